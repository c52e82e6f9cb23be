/*
 * The sessions core's facade: the API operations (create, list, get, connect, stop, end a
 * user's sessions) and the wiring of the parts below it — transitions (state changes, locks,
 * events), the launcher, the pool, the reaper, the reconciler and connect tokens.
 */
import { IsNull, type DataSource } from 'typeorm';
import type { RouteTable } from '../../lib/route-table.js';
import type { Logger } from '../../lib/log.js';
import type { Audit } from '../auth/audit.js';
import type { Quotas } from '../auth/quotas.js';
import type { SessionsConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import type { SessionEvent, StopReason } from '../plugin/contract.js';
import type { KeyValueStore } from '../store/kv.js';
import { SessionEntity, type Session, type User } from '../store/entities.js';
import { AttachTracker, type TunnelSignal } from './attach.js';
import { ConnectTokens } from './connect-tokens.js';
import { Launcher } from './launcher.js';
import { SessionPool } from './pool.js';
import { RuntimePreparation } from './preparation.js';
import { RedeemedTokens } from './redeemed-tokens.js';
import { Reaper } from './reaper.js';
import { Reconciler } from './reconciler.js';
import type { SessionRuntime } from './runtime.js';
import { capacitySnapshot, type CapacitySnapshot } from './capacity.js';
import { LIVE, RUNNING, Transitions, type UserEndReason } from './transitions.js';

export type { UserEndReason };
import { preparePersistentProfile } from '../profiles/service.js';
import { sessionView, type ConnectDescriptor, type CreateSessionInput, type SessionView } from './view.js';

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
  tunnels?: TunnelSignal;
  /** Counts a user's connect (keyed by user id); throws 429 past config.rateLimits.connectPerMinute. */
  connectLimit?: (userId: string) => Promise<void>;
}

export interface CallerContext {
  sourceIp?: string | null;
  log?: Logger;
}

/**
 * Runs sessions: the API's operations here, the lifecycle in the parts it wires. Every state
 * change is one transaction with its audit row; operations on one session run one at a time.
 */
export class SessionManager {
  private readonly t: Transitions;
  private readonly prep: RuntimePreparation;
  private readonly pool: SessionPool;
  private readonly launcher: Launcher;
  private readonly tokens: ConnectTokens;
  private readonly attach: AttachTracker;
  private readonly reaper: Reaper;
  private readonly reconciler: Reconciler;
  private unsubscribeExit: (() => void) | undefined;

  constructor(private readonly deps: SessionManagerDeps) {
    const { config, instanceId, dataSource, runtime } = deps;
    this.t = new Transitions(deps);
    this.prep = new RuntimePreparation(runtime, this.t.log);
    this.pool = new SessionPool(this.t, { config, instanceId, dataSource, runtime, certs: deps.certs, prep: this.prep });
    this.launcher = new Launcher(this.t, this.pool, { config, instanceId, quotas: deps.quotas, audit: deps.audit, certs: deps.certs, prep: this.prep, prepareProfile: (user, log) => preparePersistentProfile(deps, user, log) });
    this.tokens = new ConnectTokens({ config, publicHost: deps.publicHost, connectPort: deps.connectPort, kv: deps.kv, runtime, routes: deps.routes, audit: deps.audit, caPem: deps.certs.caPem });
    const redeemed = new RedeemedTokens();
    const read = runtime.activity?.bind(runtime);
    const activity = read ? { activity: async (containerId: string) => redeemed.observe(containerId, await read(containerId)) } : undefined;
    this.attach = new AttachTracker(this.t, deps.tunnels, activity);
    this.reaper = new Reaper(this.t, this.pool, { instanceId, dataSource, sweepIntervalMs: config.sweepIntervalMs, ...(activity ? { activity } : {}) });
    this.reconciler = new Reconciler(this.t, this.pool, this.attach, {
      instanceId,
      dataSource,
      runtime,
      intervalMs: config.reconcileIntervalSeconds * 1000,
      inFlight: this.launcher.inFlight,
    });
  }

  /** Reconciles (in the background when the runtime is slow or down), then keeps it so, the pool and the deadlines. */
  start(): void {
    this.unsubscribeExit = this.deps.runtime.onExit((e) => {
      if (!this.pool.onExit(e)) void this.t.onContainerExit(e);
    });
    this.attach.start();
    this.pool.start();
    this.reconciler.start();
    this.reaper.start();
  }

  async close(): Promise<void> {
    // Sessions and pool containers keep running: the next start adopts them.
    this.prep.close();
    this.unsubscribeExit?.();
    this.attach.close();
    await Promise.all([this.reaper.close(), this.reconciler.close(), this.pool.close()]);
    await this.t.drain();
  }

  hostnameOf(sessionId: string): string {
    return this.t.hostnameOf(sessionId);
  }

  /** Ready pool containers (for /metrics and tests). */
  poolSize(): number {
    return this.pool.size();
  }

  /** Host memory, this instance's sessions and capacity, the pool and the runtime's readiness (the admin console). */
  capacity(): Promise<CapacitySnapshot> {
    const { config, instanceId, dataSource, runtime } = this.deps;
    return capacitySnapshot({ config, instanceId, dataSource, runtime, usage: () => this.pool.usage(), pool: () => ({ ready: this.pool.size(), starting: this.pool.startingCount() }) });
  }

  /** Containers and memory in use on this instance, sessions and pool (for /metrics). */
  usage(): Promise<{ containers: number; memoryMb: number }> {
    return this.pool.usage();
  }

  /** Prepares the runtime now (image, network, firewall) rather than at the first launch; never rejects. */
  prepareInBackground(): void {
    this.prep.inBackground();
  }

  /** One reconciliation pass now (e.g. when the runtime came back); rejects when it could not run. */
  reconcile(): Promise<void> {
    return this.reconciler.reconcile();
  }

  /** Session events after they are persisted. */
  onEvent(listener: (event: SessionEvent) => void): () => void {
    return this.t.onEvent(listener);
  }

  // ---- API operations -------------------------------------------------------------------

  async create(user: User, input: CreateSessionInput, ctx: CallerContext = {}): Promise<{ session: SessionView; connect: ConnectDescriptor }> {
    const sourceIp = ctx.sourceIp ?? null;
    const started = await this.launcher.launch(user, input, sourceIp, ctx.log ?? this.t.log);
    const connect = await this.tokens.issue(started, user.id, sourceIp, ctx.log ?? this.t.log);
    return { session: sessionView(await this.get(user, started.id)), connect };
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
    const row = await this.t.find(id);
    if (!row || (row.userId !== user.id && user.role !== 'admin')) throw new AppError('NOT_FOUND', 'no such session');
    return row;
  }

  async connect(user: User, id: string, ctx: CallerContext = {}): Promise<ConnectDescriptor> {
    // Before anything else: each connect is a command in the container and an audit row.
    await this.deps.connectLimit?.(user.id);
    const row = await this.get(user, id);
    if (!RUNNING.includes(row.state)) {
      throw new AppError('SESSION_NOT_RUNNING', `the session is ${row.state}; launch a new one`);
    }
    return this.tokens.issue(row, user.id, ctx.sourceIp ?? null, ctx.log ?? this.t.log);
  }

  /**
   * Where a relay the edge opens itself (the browser's WebSocket) must dial and what it must
   * verify: the session's hostname and the session CA. Owner only, running sessions only; no
   * connect token is issued (the edge, not a client, opens this connection).
   */
  async relayTarget(user: User, id: string): Promise<{ sni: string; caPem: string }> {
    const row = await this.get(user, id);
    if (!RUNNING.includes(row.state) || !row.hostname) {
      throw new AppError('SESSION_NOT_RUNNING', `the session is ${row.state}; launch a new one`);
    }
    return { sni: row.hostname, caPem: this.deps.certs.caPem };
  }

  /** Idempotent: stopping a stopped session answers its final state. */
  async stop(user: User, id: string, ctx: CallerContext = {}): Promise<SessionView> {
    const row = await this.get(user, id);
    const reason: StopReason = row.userId === user.id ? 'user' : 'admin';
    const final = await this.t.withLock(id, () => this.t.stopLocked(id, { reason }, user.id, ctx.sourceIp ?? null));
    return sessionView(final ?? row);
  }

  /**
   * Stops every live session of the user (on any instance's row this process runs): route
   * withdrawn first, which closes the attached clients' tunnels at the edge, then the
   * container. Audited with `cause`; resolves with how many it stopped. A session whose
   * stop fails (the runtime is down) is left to the reconciler, which retries it.
   */
  async endUserSessions(userId: string, cause: UserEndReason, actor: { id: string; ip?: string | null }): Promise<number> {
    const rows = await this.deps.dataSource.getRepository(SessionEntity).findBy({ userId, instanceId: this.deps.instanceId, endedAt: IsNull() });
    const results = await Promise.allSettled(
      rows
        .filter((r) => LIVE.includes(r.state))
        .map((r) => this.t.withLock(r.id, () => this.t.stopLocked(r.id, { reason: 'admin', details: { cause } }, actor.id, actor.ip ?? null))),
    );
    for (const r of results) if (r.status === 'rejected') this.t.log.warn({ err: (r.reason as Error).message, userId, cause }, 'ending a user’s session failed; the reconciler retries');
    return results.filter((r) => r.status === 'fulfilled').length;
  }
}
