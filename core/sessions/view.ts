import { z } from 'zod';
import type { Session } from '../store/entities.js';

/** The apps a session can run (one image per app; Firefox first). */
export const APPS = ['firefox'] as const;

const URL_MAX = 2048;

/** http(s) only: javascript:, data:, file: and friends are refused. */
export const sessionUrl = z
  .string()
  .trim()
  .max(URL_MAX, `at most ${URL_MAX} characters`)
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname.length > 0 && !/[\s\0]/.test(v);
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL')
  // The normalised form (what the image's hs-open and HS_URL accept: no raw spaces or controls).
  .transform((v) => new URL(v).href);

export const createSessionBody = z.strictObject({
  app: z.enum(APPS, { message: `unknown app; available: ${APPS.join(', ')}` }),
  url: sessionUrl.optional(),
  profile: z.enum(['ephemeral', 'persist']).default('ephemeral'),
  quality: z.enum(['low', 'auto', 'high'], { message: 'must be "low", "auto" or "high"' }).default('low'),
});
export type CreateSessionInput = z.output<typeof createSessionBody>;

/** What a client needs to attach: dial host:port, send `sni`, pin `ca_cert`, log in with `token` once. */
export interface ConnectDescriptor {
  host: string;
  port: number;
  sni: string;
  token: string;
  expires_at: string;
  ca_cert: string;
}

export interface SessionView {
  session_id: string;
  user_id: string;
  state: Session['state'];
  app: string;
  url: string | null;
  profile: Session['profile'];
  quality: Session['quality'];
  hostname: string | null;
  pooled: boolean;
  created_at: string;
  updated_at: string;
  ended_at: string | null;
  /** When the maximum duration ends it. */
  deadline_at: string | null;
  /** Since when no client is attached (the idle timeout counts from here). */
  idle_since: string | null;
  failure_reason: string | null;
}

export function sessionView(s: Session): SessionView {
  return {
    session_id: s.id,
    user_id: s.userId,
    state: s.state,
    app: s.app,
    url: s.url,
    profile: s.profile,
    quality: s.quality,
    hostname: s.hostname,
    pooled: s.pooled,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
    ended_at: s.endedAt?.toISOString() ?? null,
    deadline_at: s.deadlineAt?.toISOString() ?? null,
    idle_since: s.idleSince?.toISOString() ?? null,
    failure_reason: s.failureReason,
  };
}
