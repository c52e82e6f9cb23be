/** Shared bits of the admin console's pages: htm bound to Preact, ages, error text, form values. */
import { h } from 'preact';
import htm from 'htm';
import { CallError } from './api.js';

export const html = htm.bind(h);

export function age(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function errorText(err: unknown): string {
  return err instanceof CallError ? err.info.message : 'the server could not be reached';
}

/** The value of an input or select an event came from. */
export function valueOf(e: Event): string {
  return (e.target as HTMLInputElement | HTMLSelectElement).value;
}

/** A query string from the fields that are set. */
export function query(fields: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export interface UserView {
  id: string;
  username: string;
  role: 'admin' | 'user';
  disabled: boolean;
  source: string | null;
  quota: Partial<Record<QuotaField, number>>;
  created_at: string;
}

/** The quota fields as the API names them (snake_case, as /v1). */
export const QUOTA_FIELDS = ['max_sessions', 'cpus', 'memory_mb', 'idle_timeout_minutes', 'max_duration_minutes', 'storage_mb', 'profile_mb'] as const;
export type QuotaField = (typeof QUOTA_FIELDS)[number];
export const QUOTA_LABELS: Record<QuotaField, string> = {
  max_sessions: 'Sessions at once',
  cpus: 'CPUs per session',
  memory_mb: 'Memory per session (MB)',
  idle_timeout_minutes: 'Idle timeout (min)',
  max_duration_minutes: 'Maximum duration (min)',
  storage_mb: 'Profile storage (MB)',
  profile_mb: 'Profile volume (MB)',
};
