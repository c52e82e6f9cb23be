/*
 * What a scrape reads from live objects rather than from counters recorded as things happen:
 * the edges' counters (sent to control over the edge link), sessions by state, the pool, the
 * host's capacity, certificates. Control registers one source; each scrape asks every
 * registered source (one in production; tests may run several apps in one process, whose
 * values add up), sets the gauges, and renders the registry.
 */
import { X509Certificate } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import { REJECT_REASONS, type GatewayMetricsSnapshot } from '../../lib/edge-metrics.js';
import { registry } from './registry.js';

/** Live session states (ended ones, stopped and failed, are history, not load). */
export const LIVE_STATES = ['starting', 'ready', 'connected', 'idle', 'stopping'] as const;
export type LiveState = (typeof LIVE_STATES)[number];

export interface ScrapeSnapshot {
  gateway: GatewayMetricsSnapshot | null;
  sessions: Partial<Record<string, number>>;
  pool: { target: number; ready: number };
  capacity: { containers: number; maxContainers: number; memoryMb: number; memoryCapacityMb: number };
  /** PEM certificates by name ("api", "ca"); the leaf (first) of a chain is read. */
  certificates: Record<string, string>;
  passwordHashEvaluations: number;
}

export interface ScrapeSource {
  snapshot(): Promise<ScrapeSnapshot>;
}

const sources = new Set<ScrapeSource>();

/** Adds a source to every scrape; returns its removal. */
export function addScrapeSource(source: ScrapeSource): () => void {
  sources.add(source);
  return () => sources.delete(source);
}

const registers = [registry];
const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers });
const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });

// The edges' counters (names as before prom-client: dashboards keep working).
const gw = {
  accepted: counter('hackstream_gateway_accepted_total', 'TCP connections accepted.'),
  routed: counter('hackstream_gateway_routed_total', 'Connections piped to a session upstream.'),
  terminated: counter('hackstream_gateway_terminated_total', 'Connections whose TLS the gateway terminated.'),
  rejected: counter('hackstream_gateway_rejected_total', 'Connections closed without routing, by reason.', ['reason']),
  bytes: counter('hackstream_gateway_tunnel_bytes_total', 'Bytes relayed through tunnels, by direction (upstream: client to session).', ['direction']),
  tunnels: gauge('hackstream_gateway_active_tunnels', 'Open tunnels.'),
  connections: gauge('hackstream_gateway_active_connections', 'Open client connections.'),
  pending: gauge('hackstream_gateway_pending_connections', 'Connections still sending their ClientHello.'),
};
const sessions = gauge('hackstream_sessions', 'Live sessions of this instance, by state.', ['state']);
const poolTarget = gauge('hackstream_pool_target_containers', 'Pool containers this instance keeps ready (sessions.pool.size).');
const poolReady = gauge('hackstream_pool_ready_containers', 'Pool containers ready to be claimed.');
const containers = gauge('hackstream_host_containers', 'Session and pool containers on this instance.');
const containersMax = gauge('hackstream_host_containers_max', 'Containers this instance may run (sessions.capacity.maxContainers).');
const memory = gauge('hackstream_host_memory_reserved_bytes', 'Memory reserved by sessions and pool containers on this instance.');
const memoryMax = gauge('hackstream_host_memory_capacity_bytes', 'Memory sessions may reserve on this instance (sessions.capacity.memoryMb).');
const notAfter = gauge('hackstream_tls_certificate_not_after_seconds', 'Expiry (notAfter, Unix time) of a certificate: api (the API hostname) or ca (the session CA).', ['certificate']);
const hashes = counter('hackstream_password_hash_evaluations_total', 'Argon2id hashes and verifies computed (dummy verifies included).');

const MB = 1024 * 1024;

function setCounter(c: Counter, value: number, labels?: Record<string, string>): void {
  if (labels) c.inc(labels, value);
  else c.inc(value);
}

function applyGateway(m: GatewayMetricsSnapshot): void {
  setCounter(gw.accepted, m.accepted);
  setCounter(gw.routed, m.routed);
  setCounter(gw.terminated, m.terminated);
  for (const reason of REJECT_REASONS) setCounter(gw.rejected, m.rejected[reason], { reason });
  setCounter(gw.bytes, m.bytesUpstream, { direction: 'upstream' });
  setCounter(gw.bytes, m.bytesDownstream, { direction: 'downstream' });
  gw.tunnels.inc(m.activeTunnels);
  gw.connections.inc(m.activeConnections);
  gw.pending.inc(m.pendingConnections);
}

/** The leaf's notAfter in Unix seconds, or undefined when the PEM does not parse. */
export function notAfterSeconds(pem: string): number | undefined {
  try {
    return Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);
  } catch {
    return undefined;
  }
}

function reset(): void {
  for (const m of [...Object.values(gw), sessions, poolTarget, poolReady, containers, containersMax, memory, memoryMax, notAfter, hashes]) m.reset();
  for (const state of LIVE_STATES) sessions.set({ state }, 0);
}

function apply(s: ScrapeSnapshot): void {
  if (s.gateway) applyGateway(s.gateway);
  for (const state of LIVE_STATES) sessions.inc({ state }, s.sessions[state] ?? 0);
  poolTarget.inc(s.pool.target);
  poolReady.inc(s.pool.ready);
  containers.inc(s.capacity.containers);
  containersMax.inc(s.capacity.maxContainers);
  memory.inc(s.capacity.memoryMb * MB);
  memoryMax.inc(s.capacity.memoryCapacityMb * MB);
  for (const [certificate, pem] of Object.entries(s.certificates)) {
    const t = notAfterSeconds(pem);
    if (t !== undefined) notAfter.set({ certificate }, t);
  }
  setCounter(hashes, s.passwordHashEvaluations);
}

let rendering: Promise<string> | undefined;

/** The registry in the Prometheus text format, with every source's current values. Concurrent scrapes share one pass. */
export function renderMetrics(): Promise<string> {
  rendering ??= (async () => {
    try {
      const snapshots = await Promise.all([...sources].map((s) => s.snapshot()));
      reset();
      for (const s of snapshots) apply(s);
      return await registry.metrics();
    } finally {
      rendering = undefined;
    }
  })();
  return rendering;
}

export const METRICS_CONTENT_TYPE = registry.contentType;
