import type { GatewayLimits } from '../lib/limits.js';

/**
 * The per-client caps: open connections and connections still in their ClientHello, counted by
 * a client's limit key (lib/limits.ts limitKey: IPv4 address or IPv6 /64).
 */
export class IpCaps {
  private readonly open = new Map<string, number>();
  private readonly pending = new Map<string, number>();

  constructor(private readonly limits: Pick<GatewayLimits, 'maxConnectionsPerIp' | 'maxPendingPerIp'>) {}

  /** The cap a new connection under `key` would exceed, or null. */
  refusal(key: string): 'per_ip_limit' | 'pending_limit' | null {
    if ((this.open.get(key) ?? 0) >= this.limits.maxConnectionsPerIp) return 'per_ip_limit';
    if ((this.pending.get(key) ?? 0) >= this.limits.maxPendingPerIp) return 'pending_limit';
    return null;
  }

  /** A connection under `key` opens (and is in its ClientHello). */
  add(key: string): void {
    bump(this.open, key, 1);
    bump(this.pending, key, 1);
  }

  /** Its ClientHello phase ended (read, refused or cut). */
  peeked(key: string): void {
    bump(this.pending, key, -1);
  }

  closed(key: string): void {
    bump(this.open, key, -1);
  }
}

function bump(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}
