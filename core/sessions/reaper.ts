/*
 * The reaper: every `sessions.sweepIntervalMs` stops the sessions past their deadline
 * (maximum duration, even with a client attached) or idle longer than their idle timeout,
 * and gives the pool a chance to refill after a failed start.
 */
import { In, IsNull, type DataSource } from 'typeorm';
import type { StopReason } from '../plugin/contract.js';
import { SessionEntity, type Session } from '../store/entities.js';
import type { SessionPool } from './pool.js';
import { RUNNING, type Transitions } from './transitions.js';

export interface ReaperDeps {
  instanceId: string;
  dataSource: DataSource;
  sweepIntervalMs: number;
}

/** Why the session must stop now, if it must. */
export function dueReason(row: Session, now: number): StopReason | undefined {
  if (row.deadlineAt && row.deadlineAt.getTime() <= now) return 'max-duration';
  if (row.state !== 'connected' && row.idleSince && row.idleTimeoutS && row.idleSince.getTime() + row.idleTimeoutS * 1000 <= now) return 'idle-timeout';
  return undefined;
}

export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly t: Transitions,
    private readonly pool: SessionPool,
    private readonly deps: ReaperDeps,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.deps.sweepIntervalMs);
    this.timer.unref();
    void this.sweep();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass; passes never overlap (a slow one makes the next tick a no-op). */
  sweep(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    try {
      const now = Date.now();
      const rows = await this.deps.dataSource.getRepository(SessionEntity).find({ where: { instanceId: this.deps.instanceId, endedAt: IsNull(), state: In(RUNNING) } });
      for (const row of rows) {
        const reason = dueReason(row, now);
        if (!reason) continue;
        await this.t
          .withLock(row.id, async () => {
            // Looked at again under the lock: a client may have attached, or the session ended.
            const cur = await this.t.find(row.id);
            const why = cur && RUNNING.includes(cur.state) ? dueReason(cur, Date.now()) : undefined;
            if (why) await this.t.stopLocked(row.id, { reason: why }, 'system', null);
          })
          .catch((err: unknown) => this.t.log.warn({ err: (err as Error).message, sessionId: row.id, reason }, 'stopping a due session failed; will retry'));
      }
      await this.pool.fill();
    } catch (err) {
      this.t.log.warn({ err: (err as Error).message }, 'session sweep failed; will retry');
    }
  }
}
