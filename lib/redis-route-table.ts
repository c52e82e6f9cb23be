import { Redis } from 'ioredis';
import { z } from 'zod';
import { redactUrl, type Logger } from './log.js';
import { normalizeHostname } from './hostname.js';
import { checkRoute, MemoryRouteTable, upstreamSchema, type RouteChange, type Upstream } from './route-table.js';

const changeSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('add'), hostname: z.string(), upstream: upstreamSchema }),
  z.object({ op: z.literal('remove'), hostname: z.string() }),
]);

export interface RedisRouteTableOptions {
  url: string;
  /** Key and channel prefix, so several deployments (or tests) can share one Redis. */
  prefix?: string;
  logger: Logger;
  /** Full resync interval, a safety net behind pub/sub. */
  resyncMs?: number;
}

/**
 * A route table shared through Redis: a hash holds the routes, a pub/sub channel carries
 * every change, and each instance keeps a local copy so `lookup` never waits on Redis.
 * On (re)connect and periodically the copy is rebuilt from the hash, so a missed message
 * costs at most one resync interval. If Redis is down the last known routes keep working.
 */
export class RedisRouteTable extends MemoryRouteTable {
  private readonly key: string;
  private readonly channel: string;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly cmd: Redis,
    private readonly sub: Redis,
    prefix: string,
    private readonly logger: Logger,
    resyncMs: number,
  ) {
    super();
    this.key = `${prefix}routes`;
    this.channel = `${prefix}routes:changes`;
    this.timer = setInterval(() => void this.resync(), resyncMs).unref();
  }

  static async create(opts: RedisRouteTableOptions): Promise<RedisRouteTable> {
    const redisOpts = { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true };
    const cmd = new Redis(opts.url, redisOpts);
    const sub = new Redis(opts.url, redisOpts);
    const logger = opts.logger.child({ component: 'route-table' });
    for (const c of [cmd, sub]) c.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis error'));
    const table = new RedisRouteTable(cmd, sub, opts.prefix ?? 'hackstream:', logger, opts.resyncMs ?? 30_000);
    try {
      await Promise.all([cmd.connect(), sub.connect()]);
      sub.on('message', (channel: string, message: string) => table.onMessage(channel, message));
      // ioredis resubscribes after a reconnect; messages sent meanwhile are lost, so resync.
      sub.on('ready', () => void table.resync());
      await sub.subscribe(table.channel);
      await table.resync();
    } catch (err) {
      await table.close();
      throw new Error(`route table: cannot use Redis at ${redactUrl(opts.url)}`, { cause: err });
    }
    return table;
  }

  override async add(hostname: string, upstream: Upstream): Promise<void> {
    const r = checkRoute(hostname, upstream);
    const change: RouteChange = { op: 'add', ...r };
    await this.cmd.multi().hset(this.key, r.hostname, JSON.stringify(r.upstream)).publish(this.channel, JSON.stringify(change)).exec();
    this.apply(change);
  }

  override async remove(hostname: string): Promise<boolean> {
    const h = normalizeHostname(hostname);
    if (!h) return false;
    const change: RouteChange = { op: 'remove', hostname: h };
    const res = await this.cmd.multi().hdel(this.key, h).publish(this.channel, JSON.stringify(change)).exec();
    const removed = res?.[0]?.[1] === 1;
    this.apply(change);
    return removed;
  }

  override async close(): Promise<void> {
    clearInterval(this.timer);
    this.sub.disconnect();
    this.cmd.disconnect();
    await super.close();
  }

  private onMessage(channel: string, message: string): void {
    if (channel !== this.channel) return;
    let change: z.infer<typeof changeSchema>;
    try {
      change = changeSchema.parse(JSON.parse(message));
    } catch {
      this.logger.warn('ignoring malformed route change');
      return;
    }
    const h = normalizeHostname(change.hostname);
    if (!h) return;
    this.apply(change.op === 'add' ? { op: 'add', hostname: h, upstream: change.upstream } : { op: 'remove', hostname: h });
  }

  private async resync(attempt = 0): Promise<void> {
    try {
      const before = this.changes;
      const all = await this.cmd.hgetall(this.key);
      const routes = new Map<string, Upstream>();
      for (const [h, v] of Object.entries(all)) {
        const up = upstreamSchema.safeParse(safeJson(v));
        const name = normalizeHostname(h);
        if (up.success && name) routes.set(name, up.data);
      }
      // A change applied while HGETALL was in flight may be newer than the snapshot.
      if (this.changes !== before && attempt < 3) return this.resync(attempt + 1);
      this.replaceAll(routes);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'route resync failed; keeping last known routes');
    }
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
