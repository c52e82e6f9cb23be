/** The portal's calls to /web/api: the cookie goes by itself; every POST carries the CSRF header. */

export interface ApiError {
  status: number;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export class CallError extends Error {
  constructor(readonly info: ApiError) {
    super(info.message);
  }
}

export async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method === 'POST') headers['x-hackstream-csrf'] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/web/api${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (res.status === 204) return undefined as T;
  const json: unknown = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } }).error ?? {};
    throw new CallError({ status: res.status, code: e.code ?? 'ERROR', message: e.message ?? res.statusText, ...(e.details ? { details: e.details } : {}) });
  }
  return json as T;
}

export interface Session {
  session_id: string;
  state: string;
  app: string;
  url: string | null;
  quality: string;
  created_at: string;
}

export interface Me {
  id: string;
  username: string;
  role: string;
  quota: { max_sessions: number; cpus: number; memory_mb: number; idle_timeout_minutes: number; max_duration_minutes: number; storage_mb: number };
  usage: { sessions: number; storage_mb: number };
}

export interface Methods {
  password: boolean;
  flows: { id: string; label: string; redirect: boolean; device: boolean }[];
}
