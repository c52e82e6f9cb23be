/** Why the gateway closed a connection without routing or terminating it. */
export const REJECT_REASONS = [
  'capacity',
  'per_ip_limit',
  'pending_limit',
  'client_hello_timeout',
  'too_large',
  'invalid',
  'not_tls',
  'plain_http',
  'unknown_sni',
  'closed_early',
  'upstream_unreachable',
  'not_admitted',
  'route_tunnel_limit',
  'shutting_down',
  // PROXY protocol (gateway.proxyProtocol): a header from a peer not trusted to send one; a trusted
  // peer that sent none, a malformed one, or not all of it in time.
  'proxy_untrusted',
  'proxy_missing',
  'proxy_invalid',
  'proxy_timeout',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * An edge's counters, sent to control over the edge link (lib/edge-link.ts); control exposes
 * their sum in its registry (core/metrics/scrape.ts). No prom-client here: the edge stays small.
 */
export interface GatewayMetricsSnapshot {
  accepted: number;
  /** Connections piped to a session upstream. */
  routed: number;
  /** Connections whose TLS was terminated in-process (API and ACME). */
  terminated: number;
  rejected: Record<RejectReason, number>;
  /** Bytes from clients to upstreams and from upstreams to clients, through tunnels. */
  bytesUpstream: number;
  bytesDownstream: number;
  activeTunnels: number;
  activeConnections: number;
  pendingConnections: number;
}

export function emptyRejects(): Record<RejectReason, number> {
  return Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
}
