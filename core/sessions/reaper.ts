/*
 * The reaper: every `sessions.sweepIntervalMs` stops the sessions past their deadline
 * (maximum duration, even with a client attached) or idle longer than their idle timeout —
 * no client attached, or (asked of xpra through activity.ts) an attached client that sent no
 * input — and gives the pool a chance to refill after a failed start.
 */
import { In, IsNull, type DataSource } from 'typeorm';
import type { StopReason } from '../plugin/contract.js';
import { SessionEntity, type Session } from '../store/entities.js';
import { ActivityProbe, type ActivitySource, type ActivityTarget } from './activity.js';
import type { SessionPool } from './pool.js';
import { RUNNING, type Transitions } from './transitions.js';

export interface ReaperDeps {
  instanceId: string;
  dataSource: DataSource;
  sweepIntervalMs: number;
  /** Where connected sessions' input idleness comes from; without it only tunnels count. */
  activity?: ActivitySource;
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
  private readonly probe: ActivityProbe | undefined;
  private readonly activity: ActivitySource | undefined;

  constructor(
    private readonly t: Transitions,
    private readonly pool: SessionPool,
    private readonly deps: ReaperDeps,
  ) {
    this.activity = deps.activity;
    this.probe = deps.activity ? new ActivityProbe(deps.activity, t.log) : undefined;
  }

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
      const due = new Set<string>();
      for (const row of rows) {
        const reason = dueReason(row, now);
        if (!reason) continue;
        due.add(row.id);
        await this.t
          .withLock(row.id, async () => {
            // Looked at again under the lock: a client may have attached, or the session ended.
            const cur = await this.t.find(row.id);
            const why = cur && RUNNING.includes(cur.state) ? dueReason(cur, Date.now()) : undefined;
            if (why) await this.t.stopLocked(row.id, { reason: why }, 'system', null);
          })
          .catch((err: unknown) => this.t.log.warn({ err: (err as Error).message, sessionId: row.id, reason }, 'stopping a due session failed; will retry'));
      }
      await this.stopInputIdle(rows.filter((r) => !due.has(r.id)));
      await this.pool.fill();
    } catch (err) {
      this.t.log.warn({ err: (err as Error).message }, 'session sweep failed; will retry');
    }
  }

  /** Stops connected sessions whose attached client sent no input for the idle timeout. */
  private async stopInputIdle(rows: Session[]): Promise<void> {
    const targets: ActivityTarget[] = [];
    for (const r of rows) {
      if (r.state === 'connected' && r.containerId && r.idleTimeoutS) targets.push({ sessionId: r.id, containerId: r.containerId, idleTimeoutS: r.idleTimeoutS });
    }
    const { probe, activity } = this;
    if (!probe || !activity) return;
    const idle = await probe.inputIdle(targets);
    for (const [id, seen] of idle) {
      await this.t
        .withLock(id, async () => {
          // Looked at again under the lock: the session may have ended, or the user typed just now.
          const cur = await this.t.find(id);
          if (cur?.state !== 'connected' || !cur.containerId || !cur.idleTimeoutS) return;
          const now = await activity.activity(cur.containerId);
          if (now.clients === 0 || now.idleSeconds === null || now.idleSeconds < cur.idleTimeoutS) return;
          await this.t.stopLocked(id, { reason: 'idle-timeout', details: { input: true, idleSeconds: Math.max(seen, now.idleSeconds) } }, 'system', null);
        })
        .catch((err: unknown) => this.t.log.warn({ err: (err as Error).message, sessionId: id }, 'stopping an input-idle session failed; will retry'));
    }
  }
}
