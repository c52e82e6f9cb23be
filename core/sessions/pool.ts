/*
 * The pool: pre-warmed containers a launch claims instead of starting one cold, kept at
 * `sessions.pool.size` within the host's capacity. It refills on session events (a launch
 * became ready, a session ended and freed room), after a pool container exits, and on the
 * reaper's tick; it starts filling only once the reconciler has adopted what already runs.
 */
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { SessionsConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import type { SessionEvent } from '../plugin/contract.js';
import type { RuntimePreparation } from './preparation.js';
import type { ContainerExit, RuntimeContainer, SessionRuntime } from './runtime.js';
import type { Transitions } from './transitions.js';

/** After a failed pool fill, wait this long before trying again. */
const POOL_RETRY_MS = 30_000;

export interface PoolEntry {
  sessionId: string;
  containerId: string;
  upstream: { host: string; port: number };
  memoryMb: number;
}

export interface PoolDeps {
  config: Readonly<SessionsConfig>;
  instanceId: string;
  dataSource: DataSource;
  runtime: SessionRuntime;
  certs: { issue(hostname: string): Promise<{ certPem: string; keyPem: string }> };
  prep: RuntimePreparation;
}

export class SessionPool {
  private readonly ready = new Map<string, PoolEntry>();
  /** Ids of pool containers being started (not ready yet; the reconciler must leave them). */
  private readonly starting = new Set<string>();
  private readonly starts = new Set<Promise<void>>();
  private retryAt = 0;
  private enabled = false;
  private closed = false;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly t: Transitions,
    private readonly deps: PoolDeps,
  ) {}

  /** Refills on the events that change what the pool may hold. */
  start(): void {
    this.unsubscribe = this.t.onEvent((e: SessionEvent) => {
      if (e.type === 'ready' || e.type === 'stopped' || e.type === 'failed') void this.fill();
    });
  }

  async close(): Promise<void> {
    // Pool containers keep running: the next start adopts them.
    this.closed = true;
    this.unsubscribe?.();
    await Promise.allSettled([...this.starts]);
  }

  /** From now on the pool fills (the reconciler calls it after its first pass). */
  enable(): void {
    this.enabled = true;
    void this.fill();
  }

  size(): number {
    return this.ready.size;
  }

  /** Pool containers being started (not ready yet). */
  startingCount(): number {
    return this.starting.size;
  }

  take(): PoolEntry | undefined {
    const first = this.ready.values().next();
    if (first.done) return undefined;
    this.ready.delete(first.value.sessionId);
    return first.value;
  }

  /** A claimed entry whose launch was refused before it used the container. */
  putBack(entry: PoolEntry): void {
    this.ready.set(entry.sessionId, entry);
  }

  /** Whether the pool owns this container (ready or starting): the reconciler leaves it. */
  owns(c: Pick<RuntimeContainer, 'sessionId' | 'containerId'>): boolean {
    return this.starting.has(c.sessionId) || this.ready.get(c.sessionId)?.containerId === c.containerId;
  }

  /** Takes over a running pool container found at start-up, if there is room; false otherwise. */
  adopt(c: RuntimeContainer): boolean {
    if (!c.pooled || !c.running || !c.upstream || this.ready.size >= this.deps.config.pool.size) return false;
    this.ready.set(c.sessionId, { sessionId: c.sessionId, containerId: c.containerId, upstream: c.upstream, memoryMb: this.deps.config.pool.memoryMb });
    return true;
  }

  /** A pool container exited: removed and replaced. False when the container is not the pool's. */
  onExit(exit: ContainerExit): boolean {
    const entry = this.ready.get(exit.sessionId);
    if (entry?.containerId !== exit.containerId) return false;
    this.ready.delete(exit.sessionId);
    void this.deps.runtime
      .remove(entry.containerId)
      .catch(() => {})
      .then(() => this.fill());
    this.t.log.warn({ sessionId: exit.sessionId, exitCode: exit.exitCode, oomKilled: exit.oomKilled }, 'a pool container exited; refilling');
    return true;
  }

  /** Containers and memory in use on this instance: live sessions plus the pool. */
  async usage(): Promise<{ containers: number; memoryMb: number }> {
    const rows: { n: number; mem: number }[] = await this.deps.dataSource.query(
      'SELECT count(*)::int AS n, coalesce(sum(memory_mb), 0)::int AS mem FROM sessions WHERE instance_id = $1 AND ended_at IS NULL',
      [this.deps.instanceId],
    );
    const poolMb = this.deps.config.pool.memoryMb;
    const poolMem = [...this.ready.values()].reduce((a, p) => a + p.memoryMb, 0) + this.starting.size * poolMb;
    return { containers: (rows[0]?.n ?? 0) + this.ready.size + this.starting.size, memoryMb: (rows[0]?.mem ?? 0) + poolMem };
  }

  /** CAPACITY_REACHED unless a session of `memoryMb` fits; `reuseMb`: memory of a pool container it takes over (already counted). */
  async checkCapacity(memoryMb: number, reuseMb: number): Promise<void> {
    const cap = this.deps.config.capacity;
    const u = await this.usage();
    const extraContainers = reuseMb > 0 ? 0 : 1;
    if (u.containers + extraContainers > cap.maxContainers || u.memoryMb - reuseMb + memoryMb > cap.memoryMb) {
      throw new AppError('CAPACITY_REACHED', 'this server runs as many sessions as it can; try again later', { headers: { 'Retry-After': '30' } });
    }
  }

  /** Starts pool containers up to pool.size within capacity; never rejects. */
  async fill(): Promise<void> {
    const cfg = this.deps.config;
    if (this.closed || !this.enabled || cfg.pool.size === 0 || Date.now() < this.retryAt) return;
    if (this.ready.size + this.starting.size >= cfg.pool.size) return;
    try {
      await this.deps.prep.ensure();
      while (!this.closed && this.ready.size + this.starting.size < cfg.pool.size) {
        const u = await this.usage();
        // Looked at again after the await: another fill (an event's, a timer's) may have started one meanwhile.
        if (this.closed || this.ready.size + this.starting.size >= cfg.pool.size) return;
        if (u.containers + 1 > cfg.capacity.maxContainers || u.memoryMb + cfg.pool.memoryMb > cfg.capacity.memoryMb) return;
        const id = randomUUID();
        this.starting.add(id);
        const started = this.startOne(id).finally(() => {
          this.starting.delete(id);
          this.starts.delete(started);
        });
        this.starts.add(started);
      }
    } catch (err) {
      this.retryAt = Date.now() + POOL_RETRY_MS;
      this.t.log.warn({ err: (err as Error).message }, 'cannot fill the session pool; retrying later');
    }
  }

  private async startOne(id: string): Promise<void> {
    const cfg = this.deps.config;
    try {
      const tls = await this.deps.certs.issue(this.t.hostnameOf(id));
      const c = await this.deps.runtime.create({
        sessionId: id,
        pooled: true,
        limits: { memoryMb: cfg.pool.memoryMb, cpus: cfg.pool.cpus, pids: cfg.pidsLimit },
        policy: cfg.policy,
        tls: { certPem: tls.certPem, keyPem: tls.keyPem },
      });
      if (!c.upstream) throw new Error('the pool container has no address');
      if (this.closed) return;
      this.ready.set(id, { sessionId: id, containerId: c.containerId, upstream: c.upstream, memoryMb: cfg.pool.memoryMb });
      this.t.log.info({ pool: this.ready.size }, 'pool container ready');
    } catch (err) {
      this.retryAt = Date.now() + POOL_RETRY_MS;
      this.t.log.warn({ err: (err as Error).message }, 'could not start a pool container; retrying later');
    }
  }
}
