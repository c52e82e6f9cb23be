import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { canonicalIpv6 } from './proxy-protocol.js';

/*
 * Which peers may put a PROXY protocol header in front of their connection (config
 * `gateway.proxyProtocol`). A shared leaf: the edge reads it without the control plane's config.
 */

/** "203.0.113.0/24", "2001:db8::/48", or one address ("10.0.0.5", "::1"). */
export const cidrSchema = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(value.trim());
    const family = m?.[1] ? isIP(m[1]) : 0;
    const bits = m?.[2] === undefined ? (family === 4 ? 32 : 128) : Number(m[2]);
    if (!m?.[1] || family === 0 || bits > (family === 4 ? 32 : 128)) {
      ctx.addIssue({ code: 'custom', message: 'must be an IP address or a CIDR block, e.g. "10.0.0.0/8", "192.0.2.7" or "2001:db8::/64"' });
      return z.NEVER;
    }
    return { address: m[1], prefix: bits, family: family === 4 ? ('ipv4' as const) : ('ipv6' as const) };
  });
export type Cidr = z.output<typeof cidrSchema>;

export const proxyProtocolSchema = z
  .object({
    /**
     * Peers (load balancers) that must send a PROXY header (v2, or v1) first; every other peer must
     * not. Their connections are counted, limited and audited by the client address in the header.
     */
    trusted: z.array(cidrSchema).min(1).max(1024),
  })
  .strict();
export type ProxyProtocolConfig = z.output<typeof proxyProtocolSchema>;

/** A set of trusted CIDR blocks; `has` takes an address as a socket reports it. */
export class TrustedPeers {
  private readonly list = new BlockList();

  constructor(blocks: readonly Cidr[]) {
    for (const b of blocks) this.list.addSubnet(b.address, b.prefix, b.family);
  }

  /** IPv4-mapped IPv6 (a dual-stack listener's view of an IPv4 peer) counts as IPv4. */
  has(address: string): boolean {
    const bare = address.replace(/%.*$/, '');
    const family = isIP(bare);
    if (family === 4) return this.list.check(bare, 'ipv4');
    if (family !== 6) return false;
    const canonical = canonicalIpv6(bare);
    return isIP(canonical) === 4 ? this.list.check(canonical, 'ipv4') : this.list.check(canonical, 'ipv6');
  }
}
