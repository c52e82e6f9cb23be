import { randomBytes } from 'node:crypto';
import type { Logger } from '../../lib/log.js';
import { checkKey, checkTtl, runWithLock, type KeyValueStore, type KvCounter, type KvLock, type KvSetOptions, type KvSubscriber, type KvSubscription } from './kv.js';

interface Entry {
  value: string;
  /** Epoch ms, or null for no expiry. */
  expiresAt: number | null;
}

const SWEEP_INTERVAL_MS = 30_000;

/**
 * The in-process store for a single server. Each method body runs without awaiting, so on
 * Node's one thread every operation is atomic, as Redis commands are. Expired keys vanish
 * when touched, and a sweep drops the untouched ones so memory stays bounded by live keys.
 */
export class MemoryKv implements KeyValueStore {
  readonly kind = 'memory' as const;
  private readonly data = new Map<string, Entry>();
  private readonly locks = new Map<string, Entry>();
  private readonly channels = new Map<string, Set<KvSubscriber>>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly logger: Logger) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
  }

  async get(key: string): Promise<string | null> {
    this.check(key);
    return this.live(this.data, key)?.value ?? null;
  }

  async set(key: string, value: string, opts: KvSetOptions = {}): Promise<boolean> {
    this.check(key);
    if (opts.ttlMs !== undefined) checkTtl(opts.ttlMs);
    if (opts.ifAbsent && this.live(this.data, key)) return false;
    this.data.set(key, { value, expiresAt: opts.ttlMs === undefined ? null : Date.now() + opts.ttlMs });
    return true;
  }

  async getDel(key: string): Promise<string | null> {
    this.check(key);
    const entry = this.live(this.data, key);
    this.data.delete(key);
    return entry?.value ?? null;
  }

  async del(key: string): Promise<boolean> {
    this.check(key);
    const existed = this.live(this.data, key) !== undefined;
    this.data.delete(key);
    return existed;
  }

  async incr(key: string, ttlMs: number): Promise<KvCounter> {
    this.check(key);
    checkTtl(ttlMs);
    const now = Date.now();
    const entry = this.live(this.data, key);
    if (!entry) {
      this.data.set(key, { value: '1', expiresAt: now + ttlMs });
      return { count: 1, ttlMs };
    }
    if (!/^-?\d+$/.test(entry.value)) throw new Error('kv: value is not an integer');
    const count = Number(entry.value) + 1;
    entry.value = String(count);
    // A counter written by set() without a TTL gets one, as the Redis script does.
    entry.expiresAt ??= now + ttlMs;
    return { count, ttlMs: entry.expiresAt - now };
  }

  async acquire(key: string, ttlMs: number): Promise<KvLock | null> {
    this.check(key);
    checkTtl(ttlMs);
    if (this.live(this.locks, key)) return null;
    const token = randomBytes(16).toString('hex');
    this.locks.set(key, { value: token, expiresAt: Date.now() + ttlMs });
    return {
      key,
      token,
      release: async () => {
        if (this.live(this.locks, key)?.value !== token) return false;
        this.locks.delete(key);
        return true;
      },
    };
  }

  withLock<T>(key: string, ttlMs: number, fn: () => Promise<T>, opts: { waitMs?: number } = {}): Promise<T> {
    return runWithLock(this, this.logger, key, ttlMs, fn, opts.waitMs);
  }

  async publish(channel: string, message: string): Promise<void> {
    this.check(channel);
    // Synchronous delivery: this process's subscribers have it before publish resolves.
    for (const s of [...(this.channels.get(channel) ?? [])]) {
      try {
        s.message(message);
      } catch (err) {
        this.logger.error({ channel, err: err instanceof Error ? err.message : String(err) }, 'kv subscriber threw');
      }
    }
  }

  subscribe(channel: string, subscriber: KvSubscriber): KvSubscription {
    this.check(channel);
    let set = this.channels.get(channel);
    if (!set) this.channels.set(channel, (set = new Set()));
    set.add(subscriber);
    const channels = this.channels;
    let live = true;
    return {
      get live() {
        return live;
      },
      async close() {
        live = false;
        channels.get(channel)?.delete(subscriber);
      },
    };
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('kv: closed');
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.data.clear();
    this.locks.clear();
    this.channels.clear();
  }

  private check(key: string): void {
    if (this.closed) throw new Error('kv: closed');
    checkKey(key);
  }

  private live(map: Map<string, Entry>, key: string): Entry | undefined {
    const entry = map.get(key);
    if (entry?.expiresAt != null && entry.expiresAt <= Date.now()) {
      map.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const now = Date.now();
    for (const map of [this.data, this.locks]) {
      for (const [key, entry] of map) if (entry.expiresAt !== null && entry.expiresAt <= now) map.delete(key);
    }
  }
}
