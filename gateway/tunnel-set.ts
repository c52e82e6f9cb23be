import type { Tunnel } from './tunnel.js';

/**
 * The gateway's open tunnels by hostname, with the bytes of those already closed: the
 * session manager's connected/idle signal (count), a withdrawn route (closeHost), the idle
 * sweep and the metrics all read it.
 */
export class TunnelSet {
  private readonly byHost = new Map<string, Set<Tunnel>>();
  private closedUp = 0;
  private closedDown = 0;

  add(t: Tunnel): void {
    let set = this.byHost.get(t.hostname);
    if (!set) this.byHost.set(t.hostname, (set = new Set()));
    set.add(t);
  }

  /** A closed tunnel: forgotten, its bytes kept in the totals. */
  remove(t: Tunnel): void {
    this.closedUp += t.bytesFromClient;
    this.closedDown += t.bytesToClient;
    const set = this.byHost.get(t.hostname);
    if (!set) return;
    set.delete(t);
    if (set.size === 0) this.byHost.delete(t.hostname);
  }

  count(hostname: string): number {
    return this.byHost.get(hostname)?.size ?? 0;
  }

  *all(): IterableIterator<Tunnel> {
    for (const set of this.byHost.values()) yield* set;
  }

  /** Ends every tunnel to `hostname`; returns how many. */
  closeHost(hostname: string): number {
    const set = this.byHost.get(hostname);
    if (!set) return 0;
    const all = [...set];
    for (const t of all) t.destroy();
    return all.length;
  }

  closeAll(): void {
    for (const t of [...this.all()]) t.destroy();
  }

  /** Bytes in each direction, closed and open tunnels together, and how many are open. */
  totals(): { up: number; down: number; active: number } {
    let up = this.closedUp;
    let down = this.closedDown;
    let active = 0;
    for (const t of this.all()) {
      up += t.bytesFromClient;
      down += t.bytesToClient;
      active++;
    }
    return { up, down, active };
  }
}
