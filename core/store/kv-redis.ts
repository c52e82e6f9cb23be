import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { AppError } from '../errors.js';
import { redactUrl, type Logger } from '../../lib/log.js';
import { checkKey, checkTtl, runWithLock, type KeyValueStore, type KvCounter, type KvLock, type KvSetOptions } from './kv.js';

// INCR, and start the window if the key has no expiry yet (first increment, or a plain SET).
const INCR_WINDOW = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`;

// Delete the lock only if it still holds the caller's token.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

export interface RedisKvOptions {
  url: string;
  prefix: string;
  logger: Logger;
  commandTimeoutMs: number;
}

/**
 * The key-value store on Redis. No offline queue: while Redis is unreachable a command
 * fails at once, and a command Redis does not answer fails after `commandTimeoutMs`, so a
 * dead or hung Redis costs a request at most that long (reliability D6/D7). Both become
 * AppError SERVICE_UNAVAILABLE. ioredis keeps reconnecting in the background.
 */
export class RedisKv implements KeyValueStore {
  readonly kind = 'redis' as const;
  private down = false;

  private constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
  ) {}

  static async open(opts: RedisKvOptions): Promise<RedisKv> {
    const redis = new Redis(opts.url, {
      keyPrefix: `${opts.prefix}kv:`,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs,
      connectTimeout: 5_000,
      // disconnect() keeps the process alive this long (2 s by default) even with no socket left.
      disconnectTimeout: 200,
      retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 1_000),
    });
    const kv = new RedisKv(redis, opts.logger);
    redis.on('error', (err: Error) => kv.onError(err));
    redis.on('ready', () => kv.onReady());
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      throw new Error(`kv: cannot use Redis at ${redactUrl(opts.url)}: ${(err as Error).message}`, { cause: err });
    }
    return kv;
  }

  async get(key: string): Promise<string | null> {
    checkKey(key);
    return this.run(() => this.redis.get(key));
  }

  async set(key: string, value: string, opts: KvSetOptions = {}): Promise<boolean> {
    checkKey(key);
    if (opts.ttlMs !== undefined) checkTtl(opts.ttlMs);
    const res = await this.run(() => {
      if (opts.ttlMs !== undefined) {
        return opts.ifAbsent ? this.redis.set(key, value, 'PX', opts.ttlMs, 'NX') : this.redis.set(key, value, 'PX', opts.ttlMs);
      }
      return opts.ifAbsent ? this.redis.set(key, value, 'NX') : this.redis.set(key, value);
    });
    return res === 'OK';
  }

  async getDel(key: string): Promise<string | null> {
    checkKey(key);
    return this.run(() => this.redis.getdel(key));
  }

  async del(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.run(() => this.redis.del(key))) > 0;
  }

  async incr(key: string, ttlMs: number): Promise<KvCounter> {
    checkKey(key);
    checkTtl(ttlMs);
    const res: unknown = await this.run(() => this.redis.eval(INCR_WINDOW, 1, key, String(ttlMs)));
    if (!Array.isArray(res) || typeof res[0] !== 'number' || typeof res[1] !== 'number') throw new Error('kv: unexpected INCR reply');
    return { count: res[0], ttlMs: res[1] };
  }

  async acquire(key: string, ttlMs: number): Promise<KvLock | null> {
    checkKey(key);
    checkTtl(ttlMs);
    const lockKey = `lock:${key}`;
    const token = randomBytes(16).toString('hex');
    const ok = await this.run(() => this.redis.set(lockKey, token, 'PX', ttlMs, 'NX'));
    if (ok !== 'OK') return null;
    return {
      key,
      token,
      release: async () => (await this.run(() => this.redis.eval(RELEASE, 1, lockKey, token))) === 1,
    };
  }

  withLock<T>(key: string, ttlMs: number, fn: () => Promise<T>, opts: { waitMs?: number } = {}): Promise<T> {
    return runWithLock(this, this.logger, key, ttlMs, fn, opts.waitMs);
  }

  async ping(): Promise<void> {
    await this.run(() => this.redis.ping());
  }

  async close(): Promise<void> {
    this.redis.removeAllListeners('ready');
    // QUIT waits for pending replies; a hung Redis would hold it forever.
    const quit = this.redis.quit().catch(() => undefined);
    const timer = new Promise<void>((resolve) => setTimeout(resolve, 1_000).unref());
    await Promise.race([quit, timer]);
    this.redis.disconnect();
  }

  private async run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      // A reply error (wrong type, not an integer) is a bug, not an outage: keep it as it is.
      if (err instanceof Error && err.name === 'ReplyError') throw err;
      throw new AppError('SERVICE_UNAVAILABLE', 'the key-value store is unavailable, try again shortly', {
        cause: err,
        headers: { 'Retry-After': '1' },
      });
    }
  }

  private onError(err: Error): void {
    if (this.down) return;
    this.down = true;
    this.logger.warn({ err: err.message }, 'redis unavailable; reconnecting');
  }

  private onReady(): void {
    if (!this.down) return;
    this.down = false;
    this.logger.info('redis available again');
  }
}

