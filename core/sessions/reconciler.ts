/*
 * The reconciler makes the store, the runtime and the route table agree, at start-up and then
 * every `sessions.reconcileIntervalSeconds` (and when the runtime comes back), without a
 * restart. The first pass adopts what runs (routes again, pool containers into the pool);
 * every pass corrects, each correction with one audit row:
 * - a session caught starting (no launch of this process works on it) → failed;
 * - a session stuck stopping (its teardown failed, e.g. during an engine outage) → stopped;
 * - a running session whose container is gone or stopped → stopped (reason "reconciled");
 * - a running session without its route → routed again;
 * - a container without a live session (its removal failed, or its row was deleted by
 *   hand) → removed;
 * - a route of an ended or unknown session → removed;
 * - a live session of a user disabled, or whose password or role changed, since it started
 *   (by the admin CLI, say) → stopped.
 */
import { IsNull, type DataSource } from 'typeorm';
import { SessionEntity, type Session } from '../store/entities.js';
import type { AttachTracker } from './attach.js';
import type { SessionPool } from './pool.js';
import type { RuntimeContainer, SessionRuntime } from './runtime.js';
import { RUNNING, type Transitions, type UserEndReason } from './transitions.js';

export interface ReconcilerDeps {
  instanceId: string;
  dataSource: DataSource;
  runtime: SessionRuntime;
  intervalMs: number;
  /** Sessions a launch of this process works on right now: left alone. */
  inFlight: ReadonlySet<string>;
}

type Correction = 'orphan-container' | 'row-missing' | 'stale-route';

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private adopted = false;
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;

  constructor(
    private readonly t: Transitions,
    private readonly pool: SessionPool,
    private readonly attach: AttachTracker,
    private readonly deps: ReconcilerDeps,
  ) {}

  start(): void {
    void this.reconcile().catch(() => {});
    this.timer = setInterval(() => {
      // A pass still running (a slow engine) makes this tick a no-op rather than a queue.
      if (this.pending === 0) void this.reconcile().catch(() => {});
    }, this.deps.intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.queue;
  }

  /** One pass, after any pass in progress; rejects when the runtime or store cannot be read. */
  reconcile(): Promise<void> {
    this.pending++;
    const run = this.queue.then(() => (this.closed ? undefined : this.pass()));
    this.queue = run.catch(() => {}).finally(() => this.pending--);
    return run.catch((err: unknown) => {
      this.t.log.warn({ err: (err as Error).message }, 'reconciling sessions failed; will retry');
      throw err;
    });
  }

  private async pass(): Promise<void> {
    const adopt = !this.adopted;
    const containers = await this.deps.runtime.list();
    const rows = await this.deps.dataSource.getRepository(SessionEntity).find({ where: { instanceId: this.deps.instanceId, endedAt: IsNull() } });
    const counts = { adopted: 0, ended: 0, removed: 0, routes: 0, revoked: 0 };
    // One session or container that cannot be corrected now (it is retried next pass) does not hold up the others.
    const each = <T>(id: string, fn: () => Promise<T>): Promise<T | undefined> =>
      this.t.withLock(id, fn).catch((err: unknown) => {
        this.t.log.warn({ err: (err as Error).message, sessionId: id }, 'reconciling a session failed; will retry');
        return undefined;
      });
    for (const row of rows) {
      if (this.deps.inFlight.has(row.id)) continue;
      const outcome = await each(row.id, () => this.session(row.id, containers, adopt));
      if (outcome) counts[outcome]++;
    }
    const live = new Set(rows.map((r) => r.id));
    for (const c of containers) {
      if (live.has(c.sessionId) || this.deps.inFlight.has(c.sessionId)) continue;
      if (await each(c.sessionId, () => this.container(c, adopt))) counts.removed++;
    }
    counts.routes = await this.routes();
    counts.revoked = await this.revokedUsers();
    if (adopt) {
      this.adopted = true;
      this.pool.enable();
    }
    const changed = Object.values(counts).some((n) => n > 0);
    if (adopt || changed) this.t.log.info({ ...counts, pool: this.pool.size() }, 'sessions reconciled');
  }

  /** One live session, under its lock; what was done to it. */
  private async session(id: string, containers: RuntimeContainer[], adopt: boolean): Promise<'adopted' | 'ended' | undefined> {
    const t = this.t;
    // Read again under the lock: a launch or stop may have just finished.
    const row = await t.find(id);
    if (!row || row.endedAt || this.deps.inFlight.has(id)) return undefined;
    const c = containers.find((x) => x.sessionId === id) ?? (row.containerId ? await this.fresh(row.containerId) : undefined);
    if (row.state === 'starting' || row.state === 'stopping' || !c?.running || !c.upstream) {
      // Route first, as every teardown: its tunnels close before the container goes.
      if (row.hostname) await t.deps.routes.remove(row.hostname);
      if (c) await this.deps.runtime.remove(c.containerId);
      if (row.state === 'starting') {
        const error = adopt ? 'interrupted: the control plane restarted while the session started' : 'interrupted: the session did not finish starting';
        await t.finish(id, 'failed', { reason: 'failed', error }, 'system', null);
      } else {
        await t.finish(id, 'stopped', { reason: 'reconciled', details: { was: row.state, container: c ? 'stopped' : 'gone' } }, 'system', null);
      }
      return 'ended';
    }
    const hostname = t.hostnameOf(id);
    const route = t.deps.routes.lookup(hostname);
    const routed = route?.host === c.upstream.host && route.port === c.upstream.port;
    if (!adopt && routed) return undefined;
    // Admissions still running are kept; with none, clients get in again through /connect.
    await t.deps.routes.add(hostname, { host: c.upstream.host, port: c.upstream.port, admit: route?.admit ?? [] });
    // After a restart of control no tunnel is known; after one of the agent they still are.
    const idle = row.state === 'connected' && this.attach.count(id) === 0;
    const patch: Partial<Session> & { state: Session['state'] } = { state: idle ? 'idle' : row.state, upstream: c.upstream, containerId: c.containerId, ...(idle ? { idleSince: new Date() } : {}) };
    await t.transition(id, RUNNING, patch, { actor: 'system', action: 'session_adopted', details: adopt ? {} : { correction: 'route-missing' } });
    return 'adopted';
  }

  /** A container without a live session, under its session's lock; true when it was removed. */
  private async container(c: RuntimeContainer, adopt: boolean): Promise<boolean> {
    // Looked at again: a launch may have claimed this pool container (or started this one) since the listing.
    if (this.pool.owns(c) || this.deps.inFlight.has(c.sessionId)) return false;
    const known = await this.t.find(c.sessionId);
    if (known && !known.endedAt) return false;
    // Only at start-up: later a pool-labelled container nobody owns may be a claimed one whose row went.
    if (adopt && !known && this.pool.adopt(c)) return false;
    await this.deps.runtime.remove(c.containerId);
    await this.correction(c.sessionId, known ? 'orphan-container' : 'row-missing', { containerId: c.containerId.slice(0, 12), pooled: c.pooled });
    return true;
  }

  /** Routes of ended or unknown sessions (a crash between teardown steps, a row deleted by hand). */
  private async routes(): Promise<number> {
    let removed = 0;
    for (const r of this.t.deps.routes.list()) {
      const id = this.t.sessionOf(r.hostname);
      if (!id || this.deps.inFlight.has(id)) continue;
      const gone = await this.t.withLock(id, async () => {
        const row = await this.t.find(id);
        if (row && !row.endedAt) return false;
        if (!(await this.t.deps.routes.remove(r.hostname))) return false;
        await this.correction(id, 'stale-route', { hostname: r.hostname });
        return true;
      }).catch((err: unknown) => {
        this.t.log.warn({ err: (err as Error).message, sessionId: id }, 'withdrawing a stale route failed; will retry');
        return false;
      });
      if (gone) removed++;
    }
    return removed;
  }

  /**
   * Live sessions of users disabled, or whose password or role changed (their tokens were
   * revoked), after the session started — by the admin CLI or an identity provider, behind
   * this process's back. Read from the store: the user row and the user's audit rows.
   */
  private async revokedUsers(): Promise<number> {
    const rows: { id: string; cause: UserEndReason }[] = await this.deps.dataSource.query(
      `SELECT s.id, CASE WHEN u.disabled THEN 'user-disabled' WHEN r.action = 'privilege_permissions_changed' THEN 'role-changed'
                         WHEN r.details ? 'passwordReset' THEN 'password-reset' ELSE 'user-disabled' END AS cause
         FROM sessions s JOIN users u ON u.id = s.user_id
         LEFT JOIN LATERAL (
           SELECT a.action, a.details FROM audit_log a
            WHERE a.target = s.user_id::text AND a.at > s.created_at
              AND a.action IN ('user_updated', 'privilege_permissions_changed') AND a.details->>'tokensRevoked' = 'true'
            ORDER BY a.at DESC LIMIT 1) r ON true
        WHERE s.instance_id = $1 AND s.ended_at IS NULL AND s.state <> 'stopping' AND (u.disabled OR r.action IS NOT NULL)`,
      [this.deps.instanceId],
    );
    let stopped = 0;
    // Rows stuck stopping are the session pass's to finish (no second stopping row each pass).
    for (const { id, cause } of rows) {
      if (this.deps.inFlight.has(id)) continue;
      await this.t
        .withLock(id, () => this.t.stopLocked(id, { reason: 'admin', details: { cause } }, 'system', null))
        .then(
          () => stopped++,
          (err: unknown) => this.t.log.warn({ err: (err as Error).message, sessionId: id }, 'ending a session of a changed user failed; will retry'),
        );
    }
    return stopped;
  }

  private async correction(sessionId: string, correction: Correction, details: Record<string, unknown>): Promise<void> {
    await this.t.deps.audit.record({ actor: 'system', action: 'session_reconciled', target: sessionId, sourceIp: null, result: 'success', details: { correction, ...details } });
  }

  /** A container the runtime has now (it may have started after the listing). */
  private async fresh(containerId: string): Promise<RuntimeContainer | undefined> {
    return (await this.deps.runtime.list()).find((c) => c.containerId === containerId);
  }
}
