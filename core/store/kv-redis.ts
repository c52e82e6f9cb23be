import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { AppError } from '../errors.js';
import { redactUrl, type Logger } from '../../lib/log.js';
import { checkKey, checkTtl, runWithLock, type KeyValueStore, type KvCounter, type KvLock, type KvSetOptions, type KvSubscriber, type KvSubscription } from './kv.js';

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
  private subscriber: RedisSubscriber | undefined;

  private constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    private readonly opts: RedisKvOptions,
  ) {}

  /**
   * The name (CLIENT SETNAME) of the pub/sub connection, unique per store: an operator finds it
   * in CLIENT LIST, and tests cut it with CLIENT KILL to lose messages for real.
   */
  readonly subscriberName = `hackstream-sub-${randomBytes(6).toString('hex')}`;

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
    const kv = new RedisKv(redis, opts.logger, opts);
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

  async publish(channel: string, message: string): Promise<void> {
    checkKey(channel);
    // PUBLISH names no key, so ioredis adds no keyPrefix: the channel carries it explicitly.
    await this.run(() => this.redis.publish(this.channelName(channel), message));
  }

  subscribe(channel: string, subscriber: KvSubscriber): KvSubscription {
    checkKey(channel);
    this.subscriber ??= new RedisSubscriber(this.opts, this.subscriberName, this.logger);
    return this.subscriber.add(this.channelName(channel), subscriber);
  }

  async ping(): Promise<void> {
    await this.run(() => this.redis.ping());
  }

  async close(): Promise<void> {
    this.subscriber?.close();
    this.redis.removeAllListeners('ready');
    // QUIT waits for pending replies; a hung Redis would hold it forever.
    const quit = this.redis.quit().catch(() => undefined);
    const timer = new Promise<void>((resolve) => setTimeout(resolve, 1_000).unref());
    await Promise.race([quit, timer]);
    this.redis.disconnect();
  }

  private channelName(channel: string): string {
    return `${this.opts.prefix}kv:${channel}`;
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


interface Listener {
  channel: string;
  subscriber: KvSubscriber;
  live: boolean;
}

/**
 * The one pub/sub connection of a store (a subscribed Redis connection can do nothing else).
 * It resubscribes itself after every reconnect and only then reports live again, so a
 * subscriber knows exactly when messages may have been lost.
 */
class RedisSubscriber {
  private readonly redis: Redis;
  private readonly listeners = new Set<Listener>();
  private down = false;

  constructor(opts: RedisKvOptions, name: string, private readonly logger: Logger) {
    this.redis = new Redis(opts.url, {
      lazyConnect: true,
      connectionName: name,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 5_000,
      disconnectTimeout: 200,
      retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, 1_000),
    });
    this.redis.on('error', (err: Error) => {
      if (!this.down) logger.warn({ err: err.message }, 'redis subscriber unavailable; reconnecting');
      this.down = true;
    });
    this.redis.on('close', () => this.setLive([...this.listeners], false));
    this.redis.on('ready', () => {
      if (this.down) logger.info('redis subscriber available again');
      this.down = false;
      this.listen([...this.listeners]);
    });
    this.redis.on('message', (channel: string, message: string) => this.deliver(channel, message));
    this.redis.connect().catch(() => undefined);
  }

  add(channel: string, subscriber: KvSubscriber): KvSubscription {
    const listener: Listener = { channel, subscriber, live: false };
    this.listeners.add(listener);
    if (this.redis.status === 'ready') this.listen([listener]);
    const listeners = this.listeners;
    return {
      get live() {
        return listener.live;
      },
      async close() {
        listeners.delete(listener);
        listener.live = false;
      },
    };
  }

  close(): void {
    this.listeners.clear();
    this.redis.removeAllListeners('ready');
    this.redis.disconnect();
  }

  private listen(listeners: Listener[]): void {
    if (listeners.length === 0) return;
    const channels = [...new Set(listeners.map((l) => l.channel))];
    this.redis.subscribe(...channels).then(
      () => this.setLive(listeners.filter((l) => this.listeners.has(l)), true),
      (err: unknown) => this.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'redis subscribe failed; retried on reconnect'),
    );
  }

  private setLive(listeners: Listener[], live: boolean): void {
    for (const l of listeners) {
      if (l.live === live) continue;
      l.live = live;
      try {
        l.subscriber.live?.(live);
      } catch (err) {
        this.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'kv subscriber threw');
      }
    }
  }

  private deliver(channel: string, message: string): void {
    for (const l of this.listeners) {
      if (l.channel !== channel || !l.live) continue;
      try {
        l.subscriber.message(message);
      } catch (err) {
        this.logger.error({ channel, err: err instanceof Error ? err.message : String(err) }, 'kv subscriber threw');
      }
    }
  }
}
