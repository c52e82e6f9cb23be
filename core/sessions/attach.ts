/*
 * Follows the edge's tunnel counts and xpra's own count of authenticated clients: a session is
 * connected while a tunnel is open AND xpra says a client has logged in through it; idle when
 * its last tunnel closed or when the tunnels left open hold nobody who logged in (its idle
 * timeout runs from then). xpra 3.1's pre-authentication surface is treated as hostile: an
 * admitted address that keeps opening tunnels without logging in never keeps a session alive.
 * Without a client count from the runtime, a tunnel that stays open counts (tests' runtimes).
 */
import { attaches } from '../metrics/registry.js';
import type { SessionActivity } from './runtime.js';
import { RUNNING, type Transitions } from './transitions.js';

/** A tunnel must stay open this long before the session counts as connected (a refused login closes at once). */
const CONNECT_SETTLE_MS = 1500;
/** How long after a tunnel change xpra is asked again while it reports nobody logged in (a slow client's login). */
const RECHECK_MS = [1000, 2000, 4000, 8000, 15_000, 15_000, 15_000, 15_000];

/** The gateway's tunnel signal (connected ⇄ idle). */
export interface TunnelSignal {
  onTunnelChange(l: (hostname: string, open: number) => void): () => void;
  tunnelCount(hostname: string): number;
}

/** xpra's count of logged-in clients (SessionRuntime.activity). */
export interface ClientCount {
  activity(containerId: string): Promise<SessionActivity>;
}

export class AttachTracker {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly t: Transitions,
    private readonly tunnels: TunnelSignal | undefined,
    private readonly clients?: ClientCount,
  ) {}

  start(): void {
    if (this.tunnels) this.unsubscribe = this.tunnels.onTunnelChange((h, n) => this.onTunnels(h, n));
  }

  close(): void {
    this.unsubscribe?.();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** Open tunnels to the session (0 without a tunnel signal); not all of them need have logged in. */
  count(sessionId: string): number {
    return this.tunnels?.tunnelCount(this.t.hostnameOf(sessionId)) ?? 0;
  }

  private onTunnels(hostname: string, open: number): void {
    const id = this.t.sessionOf(hostname);
    if (!id) return;
    this.cancel(id);
    if (open === 0) {
      void this.markAttached(id, false);
      return;
    }
    this.later(id, CONNECT_SETTLE_MS, () => (this.clients ? this.verify(id, 0) : this.markAttached(id, true)));
  }

  private cancel(id: string): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
  }

  private later(id: string, ms: number, fn: () => Promise<void>): void {
    const timer = setTimeout(() => {
      this.timers.delete(id);
      if (this.count(id) > 0) void fn();
    }, ms);
    timer.unref();
    this.timers.set(id, timer);
  }

  /** Asks xpra whether anyone logged in: connected if so, idle if not (asked again for a while, for a slow login). */
  private async verify(id: string, attempt: number): Promise<void> {
    const row = await this.t.find(id).catch(() => null);
    if (!row?.containerId || !RUNNING.includes(row.state)) return;
    let clients: number | undefined;
    try {
      clients = (await this.clients!.activity(row.containerId)).clients;
    } catch (err) {
      this.t.log.warn({ sessionId: id, err: (err as Error).message }, 'could not ask xpra for its clients; will retry');
    }
    if (this.timers.has(id) || this.count(id) === 0) return; // the tunnels changed meanwhile: that change decides
    if (clients !== undefined && clients > 0) return this.markAttached(id, true);
    if (clients === 0 && row.state === 'connected') await this.markAttached(id, false);
    const next = RECHECK_MS[attempt];
    if (next !== undefined) this.later(id, next, () => this.verify(id, attempt + 1));
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
