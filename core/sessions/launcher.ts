/*
 * Start-up of a session: admitted by the quota policy within the host's capacity, recorded
 * as starting, then brought up from a pool container (claimed for the user) or cold, routed,
 * and ready. A launch that fails leaves a failed row and no container behind.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/log.js';
import type { Audit } from '../auth/audit.js';
import type { Quotas } from '../auth/quotas.js';
import type { SessionsConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import { launchFailed, launchSucceeded } from '../metrics/registry.js';
import { SessionEntity, type Session, type User } from '../store/entities.js';
import type { SessionPool, PoolEntry } from './pool.js';
import type { RuntimePreparation } from './preparation.js';
import { errorDetail, hostError, hostFailureMessage, newReference } from './host-errors.js';
import { RuntimeCallError, RuntimeUnavailableError, type SessionLimits } from './runtime.js';
import type { Transitions } from './transitions.js';
import type { CreateSessionInput } from './view.js';
import { annotate, traced } from '../../lib/tracing.js';

export interface LauncherDeps {
  config: Readonly<SessionsConfig>;
  instanceId: string;
  quotas: Quotas;
  audit: Audit;
  certs: { issue(hostname: string): Promise<{ certPem: string; keyPem: string }> };
  prep: RuntimePreparation;
  /** A persist launch's volume: refuses while one is live (PROFILE_IN_USE), else creates or checks it. */
  prepareProfile: (user: User, log: Logger) => Promise<void>;
}

export class Launcher {
  /** Sessions being launched by this process (the reconciler leaves them alone). */
  readonly inFlight = new Set<string>();

  constructor(
    private readonly t: Transitions,
    private readonly pool: SessionPool,
    private readonly deps: LauncherDeps,
  ) {}

  /** Admits, records and brings up a session; resolves with it ready. */
  launch(user: User, input: CreateSessionInput, sourceIp: string | null, log: Logger): Promise<Session> {
    return traced('session.launch', () => this.start(user, input, sourceIp, log), { attributes: { 'hackstream.session.app': input.app, 'hackstream.session.profile': input.profile } });
  }

  private async start(user: User, input: CreateSessionInput, sourceIp: string | null, log: Logger): Promise<Session> {
    await this.deps.prep.ensure();
    const { quota } = await this.deps.quotas.describe(user);
    const cfg = this.deps.config;
    const limits: SessionLimits = { memoryMb: quota.memoryMb, cpus: quota.cpus, pids: cfg.pidsLimit };
    const timing = {
      idleTimeoutS: Math.min(quota.idleTimeoutMinutes * 60, cfg.idleTimeoutCapSeconds ?? Infinity),
      durationS: Math.min(quota.maxDurationMinutes * 60, cfg.maxDurationCapSeconds ?? Infinity),
    };
    // A persistent profile lives on the owner's volume, mounted at create: never a pool container.
    const pooled = input.profile === 'persist' ? undefined : this.pool.take();
    const id = pooled?.sessionId ?? randomUUID();
    this.inFlight.add(id);
    annotate({ 'hackstream.session.id': id, 'hackstream.session.pooled': pooled !== undefined });
    try {
      let row: Session;
      try {
        row = await traced('quota.check', () => this.deps.quotas.admit(
          user,
          { action: 'session.create', profile: input.profile },
          async () => {
            await this.pool.checkCapacity(limits.memoryMb, pooled ? pooled.memoryMb : 0);
            // The volume only once the quota and the host admit the launch, under the user's quota
            // lock: of two persist launches at once, the second sees the first's row.
            if (input.profile === 'persist') await this.deps.prepareProfile(user, log);
            return this.record(id, user, input, limits, timing, pooled, sourceIp);
          },
          log,
        ));
      } catch (err) {
        if (pooled) this.pool.putBack(pooled);
        throw err;
      }
      this.t.emit({ type: 'created', sessionId: id, userId: user.id, app: input.app, profile: input.profile });
      return await this.t.withLock(id, () => this.bringUp(row, pooled, limits, log.child({ sessionId: id })));
    } finally {
      this.inFlight.delete(id);
    }
  }

  private record(
    id: string,
    user: User,
    input: CreateSessionInput,
    limits: SessionLimits,
    timing: { idleTimeoutS: number; durationS: number },
    pooled: PoolEntry | undefined,
    sourceIp: string | null,
  ): Promise<Session> {
    return this.deps.audit.transaction(async (tx) => {
      const repo = tx.manager.getRepository(SessionEntity);
      const created = await repo.save(
        repo.create({
          id,
          userId: user.id,
          state: 'starting',
          app: input.app,
          url: input.url ?? null,
          profile: input.profile,
          quality: input.quality,
          hostname: this.t.hostnameOf(id),
          instanceId: this.deps.instanceId,
          memoryMb: limits.memoryMb,
          cpuMillicores: Math.round(limits.cpus * 1000),
          idleTimeoutS: timing.idleTimeoutS,
          deadlineAt: new Date(Date.now() + timing.durationS * 1000),
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
        sourceIp,
        result: 'success',
        details: { app: input.app, profile: input.profile, quality: input.quality, pooled: pooled !== undefined },
      });
      return created;
    });
  }

  /** The container for the session: the claimed pool one, or a cold one. */
  private async container(row: Session, pooled: PoolEntry | undefined, limits: SessionLimits, log: Logger, timings: Record<string, number>): Promise<{ containerId: string; upstream: { host: string; port: number }; claimed: boolean }> {
    const { runtime } = this.t.deps;
    const t0 = performance.now();
    if (pooled) {
      try {
        await runtime.claim(pooled.containerId, row.userId, row.url ?? undefined, limits);
        timings.claimMs = Math.round(performance.now() - t0);
        return { ...pooled, claimed: true };
      } catch (err) {
        if (err instanceof RuntimeUnavailableError) throw err;
        // The pool container died or broke since it was ready: start this session cold instead.
        log.warn({ err: (err as Error).message }, 'pool container unusable; starting cold');
        await runtime.remove(pooled.containerId).catch(() => {});
      }
    }
    const tls = await this.deps.certs.issue(this.t.hostnameOf(row.id));
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
    return { containerId: c.containerId, upstream: c.upstream, claimed: false };
  }

  private async bringUp(row: Session, pooled: PoolEntry | undefined, limits: SessionLimits, log: Logger): Promise<Session> {
    const t0 = performance.now();
    const timings: Record<string, number> = {};
    let container: Awaited<ReturnType<Launcher['container']>>;
    try {
      container = await traced('session.container', () => this.container(row, pooled, limits, log, timings));
    } catch (err) {
      throw await this.failed(row, pooled, err, log);
    }
    const ready = await traced('session.ready', () => this.t.transition(
      row.id,
      ['starting'],
      { state: 'ready', containerId: container.containerId, upstream: container.upstream, idleSince: new Date(), pooled: container.claimed },
      { actor: 'system', action: 'session_ready', details: { pooled: container.claimed } },
    ));
    if (!ready) {
      // Stopped while it started: nothing may keep running.
      await this.t.deps.runtime.remove(container.containerId).catch(() => {});
      throw new AppError('SESSION_NOT_RUNNING', 'the session was stopped while it started');
    }
    // Nobody is admitted yet: the connect token issued next admits the caller's address (issue 12).
    await traced('route.publish', () => this.t.deps.routes.add(this.t.hostnameOf(row.id), { host: container.upstream.host, port: container.upstream.port, admit: [] }));
    this.t.emit({ type: 'ready', sessionId: row.id, userId: row.userId });
    log.info({ pooled: container.claimed, ...timings, totalMs: Math.round(performance.now() - t0) }, 'session ready');
    launchSucceeded(row.app, container.claimed, t0);
    return ready;
  }

  /**
   * Records a failed start and answers the API's error for it. The user (the answer, the
   * row's failure_reason) reads a plain sentence with a reference; the runtime's own words go
   * to the log and the session_failed audit row under that reference.
   */
  private async failed(row: Session, pooled: PoolEntry | undefined, err: unknown, log: Logger): Promise<AppError> {
    const unavailable = err instanceof RuntimeUnavailableError;
    // The runtime's own limits (it trusts none of ours): the host is full.
    const full = err instanceof RuntimeCallError && err.kind === 'limit';
    launchFailed(unavailable ? 'runtime_unavailable' : full ? 'capacity' : 'start_failed');
    const reference = newReference();
    const plain = full ? 'this server runs as many sessions as it can; try again later' : hostFailureMessage('start', reference);
    // A pool container that failed its claim with the runtime unreachable: gone once it answers (reconciler).
    if (pooled && unavailable) await this.t.deps.runtime.remove(pooled.containerId).catch(() => {});
    await this.t
      .finish(row.id, 'failed', { reason: 'failed', error: plain, details: { reference, detail: errorDetail(err) } }, 'system', null)
      .catch((e: unknown) => log.error({ err: (e as Error).message }, 'could not record the failure (reconciliation will)'));
    if (full) {
      log.warn({ reference, detail: errorDetail(err) }, 'session refused by the runtime\'s limits');
      return new AppError('CAPACITY_REACHED', plain, { cause: err, headers: { 'Retry-After': '30' } });
    }
    return hostError(unavailable ? 'RUNTIME_UNAVAILABLE' : 'SESSION_START_FAILED', 'start', err, log, reference);
  }
}
