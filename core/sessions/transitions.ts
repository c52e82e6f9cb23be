/*
 * The bottom of the sessions core: every state change of a session (one transaction with its
 * audit row), the teardown that ends one (route first, then container), per-session locking
 * and the session events the pool and plugins follow. Everything above (launcher, pool,
 * reaper, reconciler, connect tokens) changes state only through here.
 */
import { In, type DataSource } from 'typeorm';
import type { RouteTable } from '../../lib/route-table.js';
import type { Logger } from '../../lib/log.js';
import type { AuditAction } from '../audit/actions.js';
import type { Audit } from '../auth/audit.js';
import type { SessionEvent, StopReason } from '../plugin/contract.js';
import { SessionEntity, type Session, type SessionState } from '../store/entities.js';
import { hostError } from './host-errors.js';
import { RuntimeUnavailableError, type ContainerExit, type SessionRuntime } from './runtime.js';

export const LIVE: SessionState[] = ['starting', 'ready', 'connected', 'idle', 'stopping'];
export const RUNNING: SessionState[] = ['ready', 'connected', 'idle'];
export const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface TransitionsDeps {
  sessionDomain: string;
  instanceId: string;
  logger: Logger;
  dataSource: DataSource;
  routes: RouteTable;
  runtime: SessionRuntime;
  audit: Audit;
  /** The plugins' session listeners. */
  emit: (event: SessionEvent) => void;
}

export interface AuditNote {
  actor: string;
  action: AuditAction;
  sourceIp?: string | null;
  result?: 'success' | 'failure';
  details?: Record<string, unknown>;
}

/** Why a session ended, as audited: a stop reason, or a failure with its error. */
export interface EndWhy {
  reason: StopReason | 'failed';
  error?: string;
  /** Extra audit details (e.g. what ended a user's sessions). */
  details?: Record<string, unknown>;
}

/** Why a user's live sessions are ended for them (audited as the stop's cause). */
export type UserEndReason = 'user-disabled' | 'password-reset' | 'role-changed';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type SessionEventInput = DistributiveOmit<SessionEvent, 'at'>;

export class Transitions {
  readonly log: Logger;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly listeners = new Set<(event: SessionEvent) => void>();

  constructor(readonly deps: TransitionsDeps) {
    this.log = deps.logger.child({ component: 'sessions' });
  }

  hostnameOf(sessionId: string): string {
    return `${sessionId}.${this.deps.sessionDomain}`;
  }

  /** The session id of one of our hostnames, else undefined. */
  sessionOf(hostname: string): string | undefined {
    const suffix = `.${this.deps.sessionDomain}`;
    if (!hostname.endsWith(suffix)) return undefined;
    const id = hostname.slice(0, -suffix.length);
    return SESSION_ID.test(id) ? id : undefined;
  }

  /** Operations on one session run one at a time, in call order. */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return next;
  }

  /** Waits for every locked operation in flight. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.locks.values()]);
  }

  /** Session events, after they are persisted (the pool refills on them). */
  onEvent(listener: (event: SessionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: SessionEventInput): void {
    const full = { ...event, at: new Date().toISOString() } as SessionEvent;
    for (const l of this.listeners) {
      try {
        l(full);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'a session event listener failed');
      }
    }
    this.deps.emit(full);
  }

  find(id: string): Promise<Session | null> {
    return this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id });
  }

  /** Moves the session from one of `from` with `patch`, and audits it; null when it was in no state of `from`. */
  async transition(id: string, from: SessionState[], patch: Partial<Session> & { state: SessionState }, audit: AuditNote): Promise<Session | null> {
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

  /** Moves a live session to stopped or failed (ended_at set), with its audit row and event. */
  async finish(id: string, state: 'stopped' | 'failed', why: EndWhy, actor: string, sourceIp: string | null): Promise<Session | null> {
    const row = await this.transition(
      id,
      LIVE,
      { state, endedAt: new Date(), idleSince: null, ...(why.error ? { failureReason: why.error } : {}) },
      {
        actor,
        action: state === 'failed' ? 'session_failed' : 'session_stopped',
        sourceIp,
        result: state === 'failed' ? 'failure' : 'success',
        details: { reason: why.reason, ...(why.error ? { error: why.error } : {}), ...why.details },
      },
    );
    if (row) {
      this.emit(
        state === 'failed'
          ? { type: 'failed', sessionId: id, userId: row.userId, error: why.error ?? 'failed' }
          : { type: 'stopped', sessionId: id, userId: row.userId, reason: why.reason === 'failed' ? 'reconciled' : why.reason },
      );
    }
    return row;
  }

  /** stopping → route withdrawn, container removed → stopped. Caller holds the session's lock. */
  async stopLocked(id: string, why: { reason: StopReason; details?: Record<string, unknown> }, actor: string, sourceIp: string | null): Promise<Session | null> {
    const stopping = await this.transition(id, LIVE, { state: 'stopping' }, { actor, action: 'session_stopping', sourceIp, details: { reason: why.reason, ...why.details } });
    if (!stopping) return this.find(id);
    await this.teardown(stopping);
    return this.finish(id, 'stopped', why, actor, sourceIp);
  }

  /** Route first (removing it closes the session's tunnels at the edge), then the container. */
  async teardown(row: Session): Promise<void> {
    if (row.hostname) {
      await this.deps.routes.remove(row.hostname).catch((err: unknown) => this.log.warn({ err: (err as Error).message, sessionId: row.id }, 'route withdrawal failed'));
    }
    if (!row.containerId) return;
    try {
      await this.deps.runtime.remove(row.containerId);
    } catch (err) {
      if (err instanceof RuntimeUnavailableError) throw hostError('RUNTIME_UNAVAILABLE', 'stop', err, this.log.child({ sessionId: row.id }));
      throw err;
    }
  }

  /** A session's container exited on its own: the session ends (failed unless it exited cleanly). */
  async onContainerExit(exit: ContainerExit): Promise<void> {
    const { sessionId, containerId, exitCode, oomKilled } = exit;
    await this.withLock(sessionId, async () => {
      const row = await this.deps.dataSource.getRepository(SessionEntity).findOneBy({ id: sessionId, instanceId: this.deps.instanceId });
      // Another container of this session (a replaced pool container) is not the session's.
      if (!row || !RUNNING.includes(row.state) || row.containerId !== containerId) return;
      if (row.hostname) await this.deps.routes.remove(row.hostname).catch(() => {});
      await this.deps.runtime.remove(containerId).catch(() => {});
      if (exitCode === 0 && !oomKilled) {
        await this.finish(sessionId, 'stopped', { reason: 'app-exited' }, 'system', null);
      } else {
        const error = oomKilled ? 'out of memory: the session reached its memory limit' : `the session ended unexpectedly (exit code ${exitCode ?? 'unknown'})`;
        await this.finish(sessionId, 'failed', { reason: 'failed', error }, 'system', null);
      }
      this.log.info({ sessionId, exitCode, oomKilled }, 'session container exited');
    }).catch((err: unknown) => this.log.error({ err: (err as Error).message, sessionId }, 'handling a container exit failed'));
  }
}
