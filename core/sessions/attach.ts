/*
 * Follows the edge's tunnel counts: a session with a tunnel that stays open is connected,
 * one whose last tunnel closed is idle (its idle timeout runs from then).
 */
import { attaches } from '../metrics/registry.js';
import type { Transitions } from './transitions.js';

/** A tunnel must stay open this long before the session counts as connected (a refused login closes at once). */
const CONNECT_SETTLE_MS = 1500;

/** The gateway's tunnel signal (connected ⇄ idle). */
export interface TunnelSignal {
  onTunnelChange(l: (hostname: string, open: number) => void): () => void;
  tunnelCount(hostname: string): number;
}

export class AttachTracker {
  private readonly settleTimers = new Map<string, NodeJS.Timeout>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly t: Transitions,
    private readonly tunnels: TunnelSignal | undefined,
  ) {}

  start(): void {
    if (this.tunnels) this.unsubscribe = this.tunnels.onTunnelChange((h, n) => this.onTunnels(h, n));
  }

  close(): void {
    this.unsubscribe?.();
    for (const timer of this.settleTimers.values()) clearTimeout(timer);
    this.settleTimers.clear();
  }

  /** Open tunnels to the session (0 without a tunnel signal). */
  count(sessionId: string): number {
    return this.tunnels?.tunnelCount(this.t.hostnameOf(sessionId)) ?? 0;
  }

  private onTunnels(hostname: string, open: number): void {
    const id = this.t.sessionOf(hostname);
    if (!id) return;
    clearTimeout(this.settleTimers.get(id));
    this.settleTimers.delete(id);
    if (open > 0) {
      const timer = setTimeout(() => {
        this.settleTimers.delete(id);
        if (this.count(id) === 0) return;
        void this.markAttached(id, true);
      }, CONNECT_SETTLE_MS);
      timer.unref();
      this.settleTimers.set(id, timer);
    } else {
      void this.markAttached(id, false);
    }
  }

  private async markAttached(id: string, attached: boolean): Promise<void> {
    const t = this.t;
    await t
      .withLock(id, async () => {
        const row = attached
          ? await t.transition(id, ['ready', 'idle'], { state: 'connected', idleSince: null }, { actor: 'system', action: 'session_connected' })
          : await t.transition(id, ['connected'], { state: 'idle', idleSince: new Date() }, { actor: 'system', action: 'session_idle' });
        if (row) t.emit({ type: attached ? 'connected' : 'idle', sessionId: id, userId: row.userId });
        if (row && attached) attaches.inc();
      })
      .catch((err: unknown) => t.log.warn({ err: (err as Error).message, sessionId: id }, 'recording attach state failed'));
  }
}
