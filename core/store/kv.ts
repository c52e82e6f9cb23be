import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import { MemoryKv } from './kv-memory.js';
import { RedisKv } from './kv-redis.js';

/**
 * A held lock. Only the holder's token can release it, so a holder whose lock expired
 * (and was taken by someone else) cannot release the new owner's lock.
 */
export interface KvLock {
  readonly key: string;
  readonly token: string;
  /** Releases the lock if this holder still owns it; false when it had expired or was taken. */
  release(): Promise<boolean>;
}

/** A fixed-window counter after an increment: its value and the time left in its window. */
export interface KvCounter {
  count: number;
  ttlMs: number;
}

/** What a subscriber is told: each message, and whether messages can reach it right now. */
export interface KvSubscriber {
  message(message: string): void;
  /**
   * Called when `live` changes. While not live (before the subscription is confirmed, while
   * the connection is down) messages published are lost for this subscriber, not queued.
   */
  live?(live: boolean): void;
}

export interface KvSubscription {
  /** True while published messages reach the subscriber. */
  readonly live: boolean;
  close(): Promise<void>;
}

export interface KvSetOptions {
  /** Expire the key this many milliseconds from now. */
  ttlMs?: number;
  /** Write only if the key holds no value (SET NX). */
  ifAbsent?: boolean;
}

/**
 * The key-value store behind connect tokens, rate limits, locks and pool state. Redis when
 * configured, else an in-process map with the same semantics. Values are strings (callers
 * serialise). Every operation is atomic. Redis failures surface as AppError
 * SERVICE_UNAVAILABLE (503) within the command timeout: callers fail closed.
 */
export interface KeyValueStore {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | null>;
  /** Stores a value; returns false only when `ifAbsent` was set and the key already had one. */
  set(key: string, value: string, opts?: KvSetOptions): Promise<boolean>;
  /** Returns the value and deletes the key in one step: of concurrent callers, one gets it. */
  getDel(key: string): Promise<string | null>;
  /** Deletes the key; true if it existed. */
  del(key: string): Promise<boolean>;
  /** Adds one; the first increment starts a window of `ttlMs` after which the counter is gone. */
  incr(key: string, ttlMs: number): Promise<KvCounter>;
  /** Takes the lock `key` for at most `ttlMs`, or returns null at once if someone holds it. */
  acquire(key: string, ttlMs: number): Promise<KvLock | null>;
  /**
   * Runs `fn` holding the lock `key`, waiting up to `waitMs` (default 5 s) for it; throws
   * LockTimeoutError if it stays taken. `ttlMs` must exceed `fn`'s worst case: an expired
   * lock can be taken by another caller while `fn` still runs.
   */
  withLock<T>(key: string, ttlMs: number, fn: () => Promise<T>, opts?: { waitMs?: number }): Promise<T>;
  /**
   * Fire-and-forget: every live subscriber of `channel` gets `message`, in this process and
   * (Redis) in every process sharing the prefix. Nothing is stored; nobody listening, nothing
   * delivered. Throws (503) when the store cannot take it.
   */
  publish(channel: string, message: string): Promise<void>;
  /** Starts listening at once (Redis: confirmed asynchronously, see `live`). */
  subscribe(channel: string, subscriber: KvSubscriber): KvSubscription;
  /** One round trip; throws when the store cannot answer (for /ready). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class LockTimeoutError extends AppError {
  constructor(key: string) {
    super('SERVICE_UNAVAILABLE', 'busy, try again', { headers: { 'Retry-After': '1' } });
    this.name = 'LockTimeoutError';
    this.lockKey = key;
  }
  readonly lockKey: string;
}

export interface KvOptions {
  /** redis:// URL; without it an in-process store is used. */
  redisUrl?: string;
  /** Prefix of every key (the store adds "kv:" after it). */
  redisPrefix: string;
  logger: Logger;
  /** Redis: a command without an answer fails after this long (default 1000 ms). */
  commandTimeoutMs?: number;
}

const MAX_TTL_MS = 30 * 24 * 3600 * 1000;

export function checkKey(key: string): void {
  if (key.length === 0 || key.length > 1024 || /[\u0000-\u001f\u007f]/.test(key)) {
    throw new Error('kv: a key is 1 to 1024 characters without control characters');
  }
}

export function checkTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TTL_MS) {
    throw new Error(`kv: ttlMs must be an integer from 1 to ${MAX_TTL_MS}`);
  }
}

/** Shared by both stores: acquire with backoff until the deadline, run, release. */
export async function runWithLock<T>(
  store: Pick<KeyValueStore, 'acquire'>,
  logger: Logger,
  key: string,
  ttlMs: number,
  fn: () => Promise<T>,
  waitMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  let delay = 5;
  let lock = await store.acquire(key, ttlMs);
  while (!lock) {
    const left = deadline - Date.now();
    if (left <= 0) throw new LockTimeoutError(key);
    await sleep(Math.min(left, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 100);
    lock = await store.acquire(key, ttlMs);
  }
  try {
    return await fn();
  } finally {
    const released = await lock.release().catch((err: unknown) => {
      logger.warn({ key, err: err instanceof Error ? err.message : String(err) }, 'lock release failed; it expires by itself');
      return true;
    });
    if (!released) logger.warn({ key, ttlMs }, 'lock expired before its holder finished');
  }
}

/** Opens Redis when `redisUrl` is set, else the in-process store. */
export async function openKv(opts: KvOptions): Promise<KeyValueStore> {
  const logger = opts.logger.child({ component: 'kv' });
  if (!opts.redisUrl) return new MemoryKv(logger);
  return RedisKv.open({ url: opts.redisUrl, prefix: opts.redisPrefix, logger, commandTimeoutMs: opts.commandTimeoutMs ?? 1_000 });
}
