import { isIP } from 'node:net';
import { z } from 'zod';
import { ipv6Bytes } from './proxy-protocol.js';
import { proxyProtocolSchema } from './proxy-protocol-trust.js';

/*
 * The edge's limits and timeouts (config section "gateway"). Shared leaf: the edge reads them
 * without importing the control plane's config.
 */

const ms = (def: number) => z.number().int().positive().max(86_400_000).default(def);
const count = (def: number) => z.number().int().positive().max(1_000_000).default(def);

export const gatewaySchema = z
  .object({
    /** A ClientHello must be complete within this time (total deadline, not an idle timer). */
    clientHelloTimeoutMs: ms(10_000),
    /** Bytes buffered per pending connection while its ClientHello is read. */
    maxClientHelloBytes: z.number().int().min(1024).max(1_048_576).default(65_536),
    /** Open connections in total; further ones are closed at accept. */
    maxConnections: count(10_000),
    /** Open connections from one client IP. */
    maxConnectionsPerIp: count(512),
    /** Connections from one client IP still sending their ClientHello. */
    maxPendingPerIp: count(128),
    /**
     * Open tunnels to one route (one session's xpra) at a time. A client uses one, a re-attach briefly
     * two; more is someone else knocking, refused with a TLS access_denied alert.
     */
    maxTunnelsPerRoute: count(4),
    upstreamConnectTimeoutMs: ms(5_000),
    /** A tunnel with no bytes either way for this long is closed (xpra pings keep live ones busy). */
    tunnelIdleTimeoutMs: ms(600_000),
    /** TLS handshake deadline on the terminated (API) path. */
    tlsHandshakeTimeoutMs: ms(10_000),
    httpHeadersTimeoutMs: ms(10_000),
    httpRequestTimeoutMs: ms(30_000),
    httpKeepAliveTimeoutMs: ms(5_000),
    /** On shutdown, open tunnels may drain for this long before they are cut. */
    shutdownDrainMs: ms(10_000),
    /** Load balancers in front that send a PROXY protocol header (docs/gateway.md, "Behind another proxy"). */
    proxyProtocol: proxyProtocolSchema.optional(),
  })
  .strict();

export type GatewayLimits = z.output<typeof gatewaySchema>;

/**
 * What per-IP limits, login throttling and bans count a client address by: IPv4 as is, IPv4-mapped
 * IPv6 as IPv4, IPv6 by its /64 (one subscriber's usual allocation: a client that rotates through
 * its /64 is still one client) as `h0:h1:h2:h3::/64`. A zone (`%eth0`) is ignored. Null when
 * `address` is not an IP address. The audit keeps the full address; this is for counting only.
 */
export function limitKey(address: string): string | null {
  const bare = address.includes('%') ? address.slice(0, address.indexOf('%')) : address;
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family !== 6) return null;
  const b = ipv6Bytes(bare);
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}:${b.readUInt16BE(4).toString(16)}:${b.readUInt16BE(6).toString(16)}::/64`;
}
