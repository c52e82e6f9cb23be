/*
 * Per-key request limits in fixed one-minute windows, counted with the key-value store's
 * atomic counter (kv.incr, as the login flows' start limit counts): Redis makes a limit hold
 * across control planes, the in-process store keeps one per process. Over the limit is
 * 429 RATE_LIMITED with Retry-After (the seconds left in the window).
 */
import type { Logger } from '../lib/log.js';
import { AppError } from './errors.js';
import type { KeyValueStore } from './store/kv.js';

const WINDOW_MS = 60_000;

export interface RateLimitOptions {
  kv: Pick<KeyValueStore, 'incr'>;
  /** Names the counter family in the store ("ready", "connect"). */
  scope: string;
  perMinute: number;
  /** What the refused caller reads. */
  message: string;
  /** Told once per window and key, when the limit is first passed. */
  log?: Logger;
}

/** Counts one request for `key` (a client address's id, a user id); throws 429 past the limit. */
export type RateLimiter = (key: string) => Promise<void>;

export function rateLimiter(o: RateLimitOptions): RateLimiter {
  return async (key) => {
    const c = await o.kv.incr(`ratelimit:${o.scope}:${key}`, WINDOW_MS);
    if (c.count <= o.perMinute) return;
    if (c.count === o.perMinute + 1) o.log?.warn({ scope: o.scope, key, perMinute: o.perMinute }, 'rate limit reached');
    throw new AppError('RATE_LIMITED', o.message, { headers: { 'Retry-After': String(Math.max(1, Math.ceil(c.ttlMs / 1000))) } });
  };
}
