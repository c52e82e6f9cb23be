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

/** Prometheus text exposition of a snapshot (for /v1/metrics). */
export function renderPrometheus(m: GatewayMetricsSnapshot): string {
  const lines: string[] = [];
  const counter = (name: string, help: string, value: number, type = 'counter') => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  };
  counter('hackstream_gateway_accepted_total', 'TCP connections accepted.', m.accepted);
  counter('hackstream_gateway_routed_total', 'Connections piped to a session upstream.', m.routed);
  counter('hackstream_gateway_terminated_total', 'Connections whose TLS the gateway terminated.', m.terminated);
  lines.push('# HELP hackstream_gateway_rejected_total Connections closed without routing, by reason.');
  lines.push('# TYPE hackstream_gateway_rejected_total counter');
  for (const r of REJECT_REASONS) lines.push(`hackstream_gateway_rejected_total{reason="${r}"} ${m.rejected[r]}`);
  lines.push('# HELP hackstream_gateway_tunnel_bytes_total Bytes relayed through tunnels.');
  lines.push('# TYPE hackstream_gateway_tunnel_bytes_total counter');
  lines.push(`hackstream_gateway_tunnel_bytes_total{direction="upstream"} ${m.bytesUpstream}`);
  lines.push(`hackstream_gateway_tunnel_bytes_total{direction="downstream"} ${m.bytesDownstream}`);
  counter('hackstream_gateway_active_tunnels', 'Open tunnels.', m.activeTunnels, 'gauge');
  counter('hackstream_gateway_active_connections', 'Open client connections.', m.activeConnections, 'gauge');
  counter('hackstream_gateway_pending_connections', 'Connections still sending their ClientHello.', m.pendingConnections, 'gauge');
  return `${lines.join('\n')}\n`;
}

export function emptyRejects(): Record<RejectReason, number> {
  return Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
}
