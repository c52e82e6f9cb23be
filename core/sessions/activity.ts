/*
 * Input idleness of connected sessions: an attached client left alone is as idle as no
 * client at all. The session's xpra knows when each client last sent keyboard or pointer
 * input; the reaper asks it (SessionRuntime.activity) through this, which bounds how many
 * asks run at once and how often a session is asked: a client idle for x seconds cannot
 * reach an idle timeout of T before T − x seconds more, so it is not asked again before then.
 * A failed ask is logged and retried at the next sweep; it never stops a session.
 */
import type { Logger } from '../../lib/log.js';
import type { SessionActivity } from './runtime.js';

export interface ActivitySource {
  activity(containerId: string): Promise<SessionActivity>;
}

export interface ActivityTarget {
  sessionId: string;
  containerId: string;
  idleTimeoutS: number;
}

/** Asks at once at most this many containers (each ask is a `docker exec` of xpra info). */
export const ACTIVITY_CONCURRENCY = 4;

export class ActivityProbe {
  /** sessionId → no ask before this time (ms). */
  private readonly nextAsk = new Map<string, number>();

  constructor(
    private readonly source: ActivitySource,
    private readonly log: Logger,
    private readonly concurrency = ACTIVITY_CONCURRENCY,
  ) {}

  /**
   * The sessions among `targets` whose attached clients have had no input for their idle
   * timeout, with the seconds each has been idle. Sessions not in `targets` are forgotten.
   */
  async inputIdle(targets: ActivityTarget[], now = Date.now()): Promise<Map<string, number>> {
    const live = new Set(targets.map((t) => t.sessionId));
    for (const id of this.nextAsk.keys()) if (!live.has(id)) this.nextAsk.delete(id);
    const due = targets.filter((t) => (this.nextAsk.get(t.sessionId) ?? 0) <= now);
    const idle = new Map<string, number>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length) {
        const t = due[next++]!;
        const seconds = await this.ask(t, now);
        if (seconds !== undefined) idle.set(t.sessionId, seconds);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, due.length) }, worker));
    return idle;
  }

  /** The idle seconds when past the timeout, else undefined (and when to ask again). */
  private async ask(t: ActivityTarget, now: number): Promise<number | undefined> {
    let a: SessionActivity;
    try {
      a = await this.source.activity(t.containerId);
    } catch (err) {
      this.log.warn({ sessionId: t.sessionId, err: (err as Error).message }, 'could not read session activity; will retry');
      return undefined;
    }
    if (a.clients === 0 || a.idleSeconds === null) {
      // The tunnels say connected, xpra says nobody: the idle transition follows; look again soon.
      return undefined;
    }
    if (a.idleSeconds >= t.idleTimeoutS) return a.idleSeconds;
    this.nextAsk.set(t.sessionId, now + (t.idleTimeoutS - a.idleSeconds) * 1000);
    return undefined;
  }
}
