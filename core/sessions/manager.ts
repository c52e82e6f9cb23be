import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { In, IsNull, type DataSource } from 'typeorm';
import type { RouteTable } from '../../lib/route-table.js';
import type { AuditAction } from '../audit/actions.js';
import type { Audit } from '../auth/audit.js';
import type { Quotas } from '../auth/quotas.js';
import type { SessionsConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import type { SessionEvent, StopReason } from '../plugin/contract.js';
import type { KeyValueStore } from '../store/kv.js';
import { SessionEntity, type Session, type SessionState, type User } from '../store/entities.js';
import { ImageError } from '../../agent/image.js';
import { NetworkIsolationError } from '../../agent/network.js';
import { AgentCallError, AgentLimitError } from './agent-runtime.js';
import { RuntimeUnavailableError, type RuntimeContainer, type SessionLimits, type SessionRuntime } from './runtime.js';
import { preparePersistentProfile } from '../profiles/service.js';
import { sessionView, type ConnectDescriptor, type CreateSessionInput, type SessionView } from './view.js';

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const LIVE: SessionState[] = ['starting', 'ready', 'connected', 'idle', 'stopping'];
const RUNNING: SessionState[] = ['ready', 'connected', 'idle'];
/** A tunnel must stay open this long before the session counts as connected (a refused login closes at once). */
const CONNECT_SETTLE_MS = 1500;
/** After a failed pool fill, wait this long before trying again. */
const POOL_RETRY_MS = 30_000;

export interface SessionManagerDeps {
  config: Readonly<SessionsConfig>;
  sessionDomain: string;
  publicHost: string;
  /** The port clients dial (sessions.connectPort, else the gateway's bound port). */
  connectPort: () => number;
  instanceId: string;
  logger: Logger;
  dataSource: DataSource;
  kv: KeyValueStore;
  routes: RouteTable;
  runtime: SessionRuntime;
  certs: { caPem: string; issue(hostname: string): Promise<{ certPem: string; keyPem: string }> };
  quotas: Quotas;
  audit: Audit;
  emit: (event: SessionEvent) => void;
  /** The gateway's tunnel signal (connected ⇄ idle). */
  tunnels?: { onTunnelChange(l: (hostname: string, open: number) => void): () => void; tunnelCount(hostname: string): number };
}

export interface CallerContext {
  sourceIp?: string | null;
  log?: Logger;
}

interface PoolEntry {
  sessionId: string;
  containerId: string;
  upstream: { host: string; port: number };
  memoryMb: number;
}

/**
 * Runs sessions: creates them (from the pool or cold), issues one-time connect tokens,
 * follows their state, stops them on request, idle timeout, maximum duration or exit, and
 * reconciles with the container engine after a restart. Every state change is one
 * transaction with its audit row. Operations on one session run one at a time.
 */
export class SessionManager {
  private readonly log: Logger;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly pool = new Map<string, PoolEntry>();
  /** Ids of pool containers being started (not in `pool` yet; reconcile must leave them). */
  private readonly poolStarting = new Set<string>();
  private poolFilling = 0;
  private readonly poolStarts = new Set<Promise<void>>();
  private poolRetryAt = 0;
  private prepared: Promise<void> | undefined;
  private reconciled = false;
  private closed = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly settleTimers = new Map<string, NodeJS.Timeout>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly deps: SessionManagerDeps) {
    this.log = deps.logger.child({ component: 'sessions' });
  }

  /** Reconciles (in the background when the engine is slow or down), then keeps the pool and deadlines. */
  start(): void {
    this.unsubscribe.push(this.deps.runtime.onExit((e) => void this.onContainerExit(e.sessionId, e.containerId, e.exitCode, e.oomKilled)));
    if (this.deps.tunnels) this.unsubscribe.push(this.deps.tunnels.onTunnelChange((h, n) => this.onTunnels(h, n)));
    this.sweepTimer = setInterval(() => void this.sweep(), this.deps.config.sweepIntervalMs);
    this.sweepTimer.unref();
    void this.sweep();
  }

  async close(): Promise<void> {
    // Sessions and pool containers keep running: the next start adopts them.
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const t of this.settleTimers.values()) clearTimeout(t);
    for (const u of this.unsubscribe) u();
    await Promise.allSettled([...this.locks.values(), ...this.poolStarts]);
  }

  hostnameOf(sessionId: string): string {
    return `${sessionId}.${this.deps.sessionDomain}`;
  }

  // ---- API operations -------------------------------------------------------------------

  async create(user: User, input: CreateSessionInput, ctx: CallerContext = {}): Promise<{ session: SessionView; connect: ConnectDescriptor }> {
    if (input.profile === 'persist') await preparePersistentProfile(this.deps, user, ctx.log);
    await this.ensurePrepared();
    const { quota } = await this.deps.quotas.describe(user);
    const cfg = this.deps.config;
    const idleTimeoutS = Math.min(quota.idleTimeoutMinutes * 60, cfg.idleTimeoutCapSeconds ?? Infinity);
    const durationS = Math.min(quota.maxDurationMinutes * 60, cfg.maxDurationCapSeconds ?? Infinity);
    const limits: SessionLimits = { memoryMb: quota.memoryMb, cpus: quota.cpus, pids: cfg.pidsLimit };
    const pooled = input.profile === 'persist' ? undefined : this.takeFromPool();
    const id = pooled?.sessionId ?? randomUUID();
    let row: Session;
    try {
      row = await this.deps.quotas.admit(
        user,
        { action: 'session.create', profile: input.profile },
        async () => {
          await this.checkCapacity(limits.memoryMb, pooled ? pooled.memoryMb : 0);
          return this.deps.audit.transaction(async (tx) => {
            const repo = tx.manager.getRepository(SessionEntity);
            const now = new Date();
            const created = await repo.save(
              repo.create({
                id,
                userId: user.id,
                state: 'starting',
                app: input.app,
                url: input.url ?? null,
                profile: input.profile,
                quality: input.quality,
                hostname: this.hostnameOf(id),
                instanceId: this.deps.instanceId,
                memoryMb: limits.memoryMb,
                cpuMillicores: Math.round(limits.cpus * 1000),
                idleTimeoutS,
                deadlineAt: new Date(now.getTime() + durationS * 1000),
                idleSince: null,
                pooled: pooled !== undefined,
                containerId: pooled?.containerId ?? null,
                upstream: null,
                endedAt: null,
                failureReason: null,
              }),
            );
            await tx.audit({
              actor: user.id,
              action: 'session_created',
              target: id,
              sourceIp: ctx.sourceIp ?? null,
              result: 'success',
              details: { app: input.app, profile: input.profile, quality: input.quality, pooled: pooled !== undefined },
            });
            return created;
          });
        },
        ctx.log,
      );
    } catch (err) {
      if (pooled) this.pool.set(pooled.sessionId, pooled);
      throw err;
    }
    this.emit({ type: 'created', sessionId: id, userId: user.id, app: input.app, profile: input.profile });
    const log = (ctx.log ?? this.log).child({ sessionId: id });
    const started = await this.withLock(id, () => this.bringUp(row, pooled, limits, log));
    void this.fillPool();
    const connect = await this.issueToken(started, user.id, ctx);
    return { session: sessionView(await this.get(user, id)), connect };
  }

  async list(user: User, opts: { all?: boolean; includeEnded?: boolean } = {}): Promise<SessionView[]> {
    const repo = this.deps.dataSource.getRepository(SessionEntity);
    const where = {
      ...(opts.all && user.role === 'admin' ? {} : { userId: user.id }),
      ...(opts.includeEnded ? {} : { endedAt: IsNull() }),
    };
    const rows = await repo.find({ where, order: { createdAt: 'DESC' }, take: 200 });
    return rows.map(sessionView);
  }

  /** The session if the caller may see it (its owner or an admin); otherwise 404, not 403. */
  async get(user: User, id: string): Promise<Session> {
    const row = await this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id });
    if (!row || (row.userId !== user.id && user.role !== 'admin')) throw new AppError('NOT_FOUND', 'no such session');
    return row;
  }

  async connect(user: User, id: string, ctx: CallerContext = {}): Promise<ConnectDescriptor> {
    const row = await this.get(user, id);
    if (!RUNNING.includes(row.state)) {
      throw new AppError('SESSION_NOT_RUNNING', `the session is ${row.state}; launch a new one`);
    }
    return this.issueToken(row, user.id, ctx);
  }

  /** Idempotent: stopping a stopped session answers its final state. */
  async stop(user: User, id: string, ctx: CallerContext = {}): Promise<SessionView> {
    const row = await this.get(user, id);
    const reason: StopReason = row.userId === user.id ? 'user' : 'admin';
    const final = await this.withLock(id, () => this.stopLocked(id, reason, user.id, ctx.sourceIp ?? null));
    return sessionView(final ?? row);
  }

  // ---- lifecycle ------------------------------------------------------------------------

  private async bringUp(row: Session, pooled: PoolEntry | undefined, limits: SessionLimits, log: Logger): Promise<Session> {
    const { runtime } = this.deps;
    const t0 = performance.now();
    const timings: Record<string, number> = {};
    let container: { containerId: string; upstream: { host: string; port: number } } | undefined;
    let claimed = false;
    try {
      if (pooled) {
        try {
          await runtime.claim(pooled.containerId, row.userId, row.url ?? undefined, limits);
          timings.claimMs = Math.round(performance.now() - t0);
          container = pooled;
          claimed = true;
        } catch (err) {
          if (err instanceof RuntimeUnavailableError) throw err;
          // The pool container died or broke since it was ready: start this session cold instead.
          log.warn({ err: (err as Error).message }, 'pool container unusable; starting cold');
          await runtime.remove(pooled.containerId).catch(() => {});
        }
      }
      if (!container) {
        const tls = await this.deps.certs.issue(this.hostnameOf(row.id));
        timings.certMs = Math.round(performance.now() - t0);
        const c = await runtime.create({
          sessionId: row.id,
          userId: row.userId,
          limits,
          policy: this.deps.config.policy,
          tls: { certPem: tls.certPem, keyPem: tls.keyPem },
          ...(row.url ? { url: row.url } : {}),
          ...(row.profile === 'persist' ? { profile: 'persist' as const } : {}),
        });
        if (!c.upstream) throw new Error('the container has no address on the sessions network');
        timings.containerMs = Math.round(performance.now() - t0) - timings.certMs;
        container = { containerId: c.containerId, upstream: c.upstream };
      }
    } catch (err) {
      const unavailable = err instanceof RuntimeUnavailableError;
      const reason = unavailable ? 'the container engine is unreachable' : `the container did not start: ${(err as Error).message}`;
      log.error({ err: (err as Error).message }, 'session failed to start');
      if (pooled && !claimed) await runtime.remove(pooled.containerId).catch(() => {});
      await this.finish(row.id, 'failed', { reason: 'failed', error: reason.slice(0, 500) }, 'system', null).catch((e: unknown) =>
        log.error({ err: (e as Error).message }, 'could not record the failure (reconciliation will)'),
      );
      if (unavailable) throw new AppError('RUNTIME_UNAVAILABLE', (err as Error).message, { cause: err });
      // The agent's own limits (it trusts none of ours): the host is full.
      if (err instanceof AgentLimitError) throw new AppError('CAPACITY_REACHED', 'this server runs as many sessions as it can; try again later', { cause: err, headers: { 'Retry-After': '30' } });
      throw new AppError('SESSION_START_FAILED', 'the session did not start; try again (details are in the server log)', { cause: err });
    }
    const ready = await this.transition(
      row.id,
      ['starting'],
      { state: 'ready', containerId: container.containerId, upstream: container.upstream, idleSince: new Date(), pooled: claimed },
      { actor: 'system', action: 'session_ready', details: { pooled: claimed } },
    );
    if (!ready) {
      // Stopped while it started: nothing may keep running.
      await runtime.remove(container.containerId).catch(() => {});
      throw new AppError('SESSION_NOT_RUNNING', 'the session was stopped while it started');
    }
    await this.deps.routes.add(this.hostnameOf(row.id), container.upstream);
    this.emit({ type: 'ready', sessionId: row.id, userId: row.userId });
    log.info({ pooled: claimed, ...timings, totalMs: Math.round(performance.now() - t0) }, 'session ready');
    return ready;
  }

  private async issueToken(row: Session, actor: string, ctx: CallerContext): Promise<ConnectDescriptor> {
    if (!row.containerId || !row.hostname) throw new AppError('SESSION_NOT_RUNNING', 'the session has no running container');
    const ttlMs = this.deps.config.connectTokenTtlSeconds * 1000;
    const token = `hsc_${randomBytes(32).toString('base64url')}`;
    const hash = createHash('sha256').update(token).digest('hex');
    const expiresAt = new Date(Date.now() + ttlMs);
    // Recorded (by hash) in the key-value store first: when it is down, no token is issued.
    await this.deps.kv.set(`connect:${hash}`, row.id, { ttlMs });
    try {
      await this.deps.runtime.allowToken(row.containerId, hash, expiresAt);
    } catch (err) {
      if (err instanceof RuntimeUnavailableError) throw new AppError('RUNTIME_UNAVAILABLE', err.message, { cause: err });
      throw new AppError('SESSION_NOT_RUNNING', 'the session does not answer; stop it and launch a new one', { cause: err });
    }
    await this.deps.audit.record({
      actor,
      action: 'session_connect_token',
      target: row.id,
      sourceIp: ctx.sourceIp ?? null,
      result: 'success',
      details: { expiresAt: expiresAt.toISOString() },
    });
    return {
      host: this.deps.publicHost,
      port: this.deps.config.connectPort ?? this.deps.connectPort(),
      sni: row.hostname,
      token,
      expires_at: expiresAt.toISOString(),
      ca_cert: this.deps.certs.caPem,
    };
  }

  /** stopping → container removed, route withdrawn → stopped. Caller holds the session's lock. */
  private async stopLocked(id: string, reason: StopReason, actor: string, sourceIp: string | null): Promise<Session | null> {
    const stopping = await this.transition(id, ['starting', 'ready', 'connected', 'idle', 'stopping'], { state: 'stopping' }, {
      actor,
      action: 'session_stopping',
      sourceIp,
      details: { reason },
    });
    if (!stopping) return this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id });
    await this.teardown(stopping);
    return this.finish(id, 'stopped', { reason }, actor, sourceIp);
  }

  private async teardown(row: Session): Promise<void> {
    if (row.hostname) await this.deps.routes.remove(row.hostname).catch((err: unknown) => this.log.warn({ err: (err as Error).message, sessionId: row.id }, 'route withdrawal failed'));
    if (row.containerId) {
      try {
        await this.deps.runtime.remove(row.containerId);
      } catch (err) {
        if (err instanceof RuntimeUnavailableError) throw new AppError('RUNTIME_UNAVAILABLE', err.message, { cause: err });
        throw err;
      }
    }
  }

  /** Moves a live session to stopped or failed (ended_at set), with its audit row and event. */
  private async finish(
    id: string,
    state: 'stopped' | 'failed',
    why: { reason: StopReason | 'failed'; error?: string },
    actor: string,
    sourceIp: string | null,
  ): Promise<Session | null> {
    const row = await this.transition(
      id,
      LIVE,
      { state, endedAt: new Date(), idleSince: null, ...(why.error ? { failureReason: why.error } : {}) },
      {
        actor,
        action: state === 'failed' ? 'session_failed' : 'session_stopped',
        sourceIp,
        result: state === 'failed' ? 'failure' : 'success',
        details: why.error ? { reason: why.reason, error: why.error } : { reason: why.reason },
      },
    );
    if (row) {
      this.emit(
        state === 'failed'
          ? { type: 'failed', sessionId: id, userId: row.userId, error: why.error ?? 'failed' }
          : { type: 'stopped', sessionId: id, userId: row.userId, reason: why.reason as StopReason },
      );
      void this.fillPool();
    }
    return row;
  }

  private async transition(
    id: string,
    from: SessionState[],
    patch: Partial<Session> & { state: SessionState },
    audit: { actor: string; action: AuditAction; sourceIp?: string | null; result?: 'success' | 'failure'; details?: Record<string, unknown> },
  ): Promise<Session | null> {
    return this.deps.audit.transaction(async (tx) => {
      const repo = tx.manager.getRepository(SessionEntity);
      const cur = await repo.findOne({ where: { id, state: In(from) }, lock: { mode: 'pessimistic_write' } });
      if (!cur) return null;
      const previous = cur.state;
      Object.assign(cur, patch);
      const saved = await repo.save(cur);
      await tx.audit({
        actor: audit.actor,
        action: audit.action,
        target: id,
        sourceIp: audit.sourceIp ?? null,
        result: audit.result ?? 'success',
        details: { from: previous, to: patch.state, ...audit.details },
      });
      return saved;
    });
  }

  // ---- signals: container exits, tunnels, deadlines ---------------------------------------

  private async onContainerExit(sessionId: string, containerId: string, exitCode: number | null, oomKilled: boolean): Promise<void> {
    const pooled = this.pool.get(sessionId);
    if (pooled?.containerId === containerId) {
      this.pool.delete(sessionId);
      await this.deps.runtime.remove(pooled.containerId).catch(() => {});
      this.log.warn({ sessionId, exitCode, oomKilled }, 'a pool container exited; refilling');
      void this.fillPool();
      return;
    }
    await this.withLock(sessionId, async () => {
      const row = await this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id: sessionId, instanceId: this.deps.instanceId });
      // Another container of this session (a replaced pool container) is not the session's.
      if (!row || !RUNNING.includes(row.state) || row.containerId !== containerId) return;
      if (row.hostname) await this.deps.routes.remove(row.hostname).catch(() => {});
      if (row.containerId) await this.deps.runtime.remove(row.containerId).catch(() => {});
      if (exitCode === 0 && !oomKilled) {
        await this.finish(sessionId, 'stopped', { reason: 'app-exited' }, 'system', null);
      } else {
        const error = oomKilled ? 'out of memory: the session reached its memory limit' : `the session ended unexpectedly (exit code ${exitCode ?? 'unknown'})`;
        await this.finish(sessionId, 'failed', { reason: 'failed', error }, 'system', null);
      }
      this.log.info({ sessionId, exitCode, oomKilled }, 'session container exited');
    }).catch((err: unknown) => this.log.error({ err: (err as Error).message, sessionId }, 'handling a container exit failed'));
  }

  private onTunnels(hostname: string, open: number): void {
    const suffix = `.${this.deps.sessionDomain}`;
    if (!hostname.endsWith(suffix)) return;
    const id = hostname.slice(0, -suffix.length);
    if (!SESSION_ID.test(id)) return;
    clearTimeout(this.settleTimers.get(id));
    this.settleTimers.delete(id);
    if (open > 0) {
      const timer = setTimeout(() => {
        this.settleTimers.delete(id);
        if ((this.deps.tunnels?.tunnelCount(hostname) ?? 0) === 0) return;
        void this.markAttached(id, true);
      }, CONNECT_SETTLE_MS);
      timer.unref();
      this.settleTimers.set(id, timer);
    } else {
      void this.markAttached(id, false);
    }
  }

  private async markAttached(id: string, attached: boolean): Promise<void> {
    await this.withLock(id, async () => {
      const row = attached
        ? await this.transition(id, ['ready', 'idle'], { state: 'connected', idleSince: null }, { actor: 'system', action: 'session_connected' })
        : await this.transition(id, ['connected'], { state: 'idle', idleSince: new Date() }, { actor: 'system', action: 'session_idle' });
      if (row) this.emit({ type: attached ? 'connected' : 'idle', sessionId: id, userId: row.userId });
    }).catch((err: unknown) => this.log.warn({ err: (err as Error).message, sessionId: id }, 'recording attach state failed'));
  }

  /** Reconciles once, then stops sessions past their idle timeout or deadline and keeps the pool. */
  private async sweep(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.reconciled) {
        await this.reconcile();
        this.reconciled = true;
      }
      const now = Date.now();
      const rows = await this.deps.dataSource
        .getRepository(SessionEntity)
        .find({ where: { instanceId: this.deps.instanceId, endedAt: IsNull(), state: In(RUNNING) } });
      for (const row of rows) {
        let reason: StopReason | undefined;
        if (row.deadlineAt && row.deadlineAt.getTime() <= now) reason = 'max-duration';
        else if (row.state !== 'connected' && row.idleSince && row.idleTimeoutS && row.idleSince.getTime() + row.idleTimeoutS * 1000 <= now) reason = 'idle-timeout';
        if (reason) {
          const r = reason;
          await this.withLock(row.id, () => this.stopLocked(row.id, r, 'system', null)).catch((err: unknown) =>
            this.log.warn({ err: (err as Error).message, sessionId: row.id }, `stopping after ${r} failed; will retry`),
          );
        }
      }
      await this.fillPool();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'session sweep failed; will retry');
    }
  }

  /**
   * After a restart: live containers of this instance are adopted with their routes,
   * sessions whose container vanished are marked stopped, sessions caught starting are
   * failed, and containers nobody owns are removed (running pool containers are kept).
   */
  async reconcile(): Promise<void> {
    const { runtime, dataSource, instanceId } = this.deps;
    const containers = await runtime.list();
    const bySession = new Map<string, RuntimeContainer>(containers.map((c) => [c.sessionId, c]));
    const rows = await dataSource.getRepository(SessionEntity).find({ where: { instanceId, endedAt: IsNull() } });
    const live = new Set(rows.map((r) => r.id));
    let adopted = 0;
    let ended = 0;
    for (const listed of rows) {
      await this.withLock(listed.id, async () => {
        // Read again under the lock: a launch or stop of this process may have just finished
        // (reconcile also runs when the agent reconnects, with work in flight).
        const row = await dataSource.getRepository(SessionEntity).findOneBy({ id: listed.id });
        if (!row || row.endedAt) return;
        const c = row.containerId ? (bySession.get(row.id) ?? (await this.freshContainer(row.containerId))) : bySession.get(row.id);
        if (row.state === 'starting' || row.state === 'stopping' || !c?.running || !c.upstream) {
          if (c) await runtime.remove(c.containerId);
          if (row.hostname) await this.deps.routes.remove(row.hostname);
          if (row.state === 'starting') {
            await this.finish(row.id, 'failed', { reason: 'failed', error: 'interrupted: the control plane restarted while the session started' }, 'system', null);
          } else {
            await this.finish(row.id, 'stopped', { reason: 'reconciled' }, 'system', null);
          }
          ended++;
          return;
        }
        await this.deps.routes.add(this.hostnameOf(row.id), c.upstream);
        // After a restart of control no tunnel is known; after one of the agent they still are.
        const idle = row.state === 'connected' && (this.deps.tunnels?.tunnelCount(this.hostnameOf(row.id)) ?? 0) === 0;
        await this.transition(row.id, RUNNING, { state: idle ? 'idle' : row.state, upstream: c.upstream, containerId: c.containerId, ...(idle ? { idleSince: new Date() } : {}) }, {
          actor: 'system',
          action: 'session_adopted',
        });
        adopted++;
      });
    }
    let removed = 0;
    for (const c of containers) {
      if (live.has(c.sessionId)) continue;
      // Under the session's lock, and looked at again: a launch may have claimed this pool
      // container (or started this one) since the listing.
      await this.withLock(c.sessionId, async () => {
        if (this.poolStarting.has(c.sessionId) || [...this.pool.values()].some((p) => p.containerId === c.containerId)) return;
        const known = await dataSource.getRepository(SessionEntity).findOneBy({ id: c.sessionId });
        if (known && !known.endedAt) return;
        if (c.pooled && !known && c.running && c.upstream && this.pool.size < this.deps.config.pool.size) {
          this.pool.set(c.sessionId, { sessionId: c.sessionId, containerId: c.containerId, upstream: c.upstream, memoryMb: this.deps.config.pool.memoryMb });
          return;
        }
        await runtime.remove(c.containerId);
        removed++;
      });
    }
    // Routes of ended sessions (a crash between teardown steps) must not linger.
    const suffix = `.${this.deps.sessionDomain}`;
    for (const r of this.deps.routes.list()) {
      if (!r.hostname.endsWith(suffix)) continue;
      const id = r.hostname.slice(0, -suffix.length);
      if (!SESSION_ID.test(id)) continue;
      const row = await dataSource.getRepository(SessionEntity).findOneBy({ id });
      if (!row || row.endedAt) await this.deps.routes.remove(r.hostname);
    }
    this.log.info({ adopted, ended, removed, pool: this.pool.size }, 'sessions reconciled');
  }

  /** A container the runtime has now (it may have started after reconcile listed them). */
  private async freshContainer(containerId: string): Promise<RuntimeContainer | undefined> {
    return (await this.deps.runtime.list()).find((c) => c.containerId === containerId);
  }

  // ---- pool and capacity ----------------------------------------------------------------

  /** Ready pool containers (for /metrics and tests). */
  poolSize(): number {
    return this.pool.size;
  }

  private takeFromPool(): PoolEntry | undefined {
    const first = this.pool.values().next();
    if (first.done) return undefined;
    this.pool.delete(first.value.sessionId);
    return first.value;
  }

  private async usage(): Promise<{ containers: number; memoryMb: number }> {
    const rows: { n: number; mem: number }[] = await this.deps.dataSource.query(
      'SELECT count(*)::int AS n, coalesce(sum(memory_mb), 0)::int AS mem FROM sessions WHERE instance_id = $1 AND ended_at IS NULL',
      [this.deps.instanceId],
    );
    const poolMem = [...this.pool.values()].reduce((a, p) => a + p.memoryMb, 0) + this.poolFilling * this.deps.config.pool.memoryMb;
    return { containers: (rows[0]?.n ?? 0) + this.pool.size + this.poolFilling, memoryMb: (rows[0]?.mem ?? 0) + poolMem };
  }

  /** `reuseMb`: memory of a pool container this launch takes over (already counted). */
  private async checkCapacity(memoryMb: number, reuseMb: number): Promise<void> {
    const cap = this.deps.config.capacity;
    const u = await this.usage();
    const extraContainers = reuseMb > 0 ? 0 : 1;
    if (u.containers + extraContainers > cap.maxContainers || u.memoryMb - reuseMb + memoryMb > cap.memoryMb) {
      throw new AppError('CAPACITY_REACHED', 'this server runs as many sessions as it can; try again later', { headers: { 'Retry-After': '30' } });
    }
  }

  /** Starts pool containers up to pool.size within capacity; never rejects. */
  private async fillPool(): Promise<void> {
    const cfg = this.deps.config;
    if (this.closed || !this.reconciled || cfg.pool.size === 0 || Date.now() < this.poolRetryAt) return;
    if (this.pool.size + this.poolFilling >= cfg.pool.size) return;
    try {
      await this.ensurePrepared();
      while (!this.closed && this.pool.size + this.poolFilling < cfg.pool.size) {
        const u = await this.usage();
        // Looked at again after the await: another fill (a claim's, a timer's) may have started one meanwhile.
        if (this.closed || this.pool.size + this.poolFilling >= cfg.pool.size) return;
        if (u.containers + 1 > cfg.capacity.maxContainers || u.memoryMb + cfg.pool.memoryMb > cfg.capacity.memoryMb) return;
        this.poolFilling++;
        const started = this.startPoolContainer().finally(() => {
          this.poolFilling--;
          this.poolStarts.delete(started);
        });
        this.poolStarts.add(started);
      }
    } catch (err) {
      this.poolRetryAt = Date.now() + POOL_RETRY_MS;
      this.log.warn({ err: (err as Error).message }, 'cannot fill the session pool; retrying later');
    }
  }

  private async startPoolContainer(): Promise<void> {
    const id = randomUUID();
    const cfg = this.deps.config;
    this.poolStarting.add(id);
    try {
      const tls = await this.deps.certs.issue(this.hostnameOf(id));
      const c = await this.deps.runtime.create({
        sessionId: id,
        pooled: true,
        limits: { memoryMb: cfg.pool.memoryMb, cpus: cfg.pool.cpus, pids: cfg.pidsLimit },
        policy: cfg.policy,
        tls: { certPem: tls.certPem, keyPem: tls.keyPem },
      });
      if (!c.upstream) throw new Error('the pool container has no address');
      if (this.closed) return;
      this.pool.set(id, { sessionId: id, containerId: c.containerId, upstream: c.upstream, memoryMb: cfg.pool.memoryMb });
      this.log.info({ pool: this.pool.size }, 'pool container ready');
    } catch (err) {
      this.poolRetryAt = Date.now() + POOL_RETRY_MS;
      this.log.warn({ err: (err as Error).message }, 'could not start a pool container; retrying later');
    } finally {
      this.poolStarting.delete(id);
    }
  }

  /** Prepares the runtime now (image, network, firewall) rather than at the first launch; never rejects. */
  prepareInBackground(): void {
    if (this.closed) return;
    this.ensurePrepared().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message, retryInMs: POOL_RETRY_MS }, 'the session runtime is not ready; launches fail until it is');
      setTimeout(() => this.prepareInBackground(), POOL_RETRY_MS).unref();
    });
  }

  private ensurePrepared(): Promise<void> {
    this.prepared ??= this.deps.runtime.prepare((line) => this.log.info({ progress: line }, 'preparing the session runtime')).catch((err: unknown) => {
      this.prepared = undefined;
      // No engine, or no way to isolate the sessions' network: either way no session can run.
      if (err instanceof RuntimeUnavailableError || err instanceof NetworkIsolationError) throw new AppError('RUNTIME_UNAVAILABLE', err.message, { cause: err });
      // A missing or unbuildable image is the operator's to fix; the user learns the launch failed.
      if (err instanceof ImageError || err instanceof AgentCallError) {
        this.log.error({ err: err.message }, 'the session image is not available');
        throw new AppError('SESSION_START_FAILED', 'the session image is not available on the server; the administrator must build it (details are in the server log)', { cause: err });
      }
      throw err;
    });
    return this.prepared;
  }

  // ---- helpers --------------------------------------------------------------------------

  private withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return next;
  }

  private emit(event: DistributiveOmit<SessionEvent, 'at'>): void {
    this.deps.emit({ ...event, at: new Date().toISOString() } as SessionEvent);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
