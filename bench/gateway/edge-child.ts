/**
 * The edge alone for the benchmark ("gateway-edge"): listener, ClientHello reader, route table, tunnels and
 * a trivial HTTP handler behind TLS termination, from the production build. Imports nothing from core/
 * (what an edge process holds); the API certificate is made by the driver with openssl.
 * Env: BENCH_ROUTE ("hostname=port" on 127.0.0.1), BENCH_API_CERT / BENCH_API_KEY (PEM files),
 * BENCH_EDGE_WORKERS (1): with more than one, this process is a `cluster` primary with SCHED_NONE, as the
 * supervisor runs edge workers: the primary binds the port and every worker accepts on it itself.
 * Sends {type: 'ready', port} over IPC; answers {cmd: 'metrics'} and {cmd: 'gc'} (summed over workers).
 * Exits normally on disconnect or SIGTERM, so that `--cpu-prof` gets to write its profile.
 */
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { Gateway } from '../../gateway/gateway.js';
import { emptyRejects, REJECT_REASONS, type GatewayMetricsSnapshot } from '../../lib/edge-metrics.js';
import { gatewaySchema } from '../../lib/limits.js';
import { createLogger } from '../../lib/log.js';
import { MemoryRouteTable } from '../../lib/route-table.js';

// Limits as open as nginx's (which has none configured): the benchmark measures speed, not admission.
const LIMITS = gatewaySchema.parse({
  maxConnections: 100_000,
  maxConnectionsPerIp: 100_000,
  maxTunnelsPerRoute: 100_000,
  maxPendingPerIp: 100_000,
  clientHelloTimeoutMs: 10_000,
  shutdownDrainMs: 500,
});
const WORKERS = Math.max(1, Number(process.env.BENCH_EDGE_WORKERS ?? 1) || 1);

type Message = { cmd?: unknown };
const cmdOf = (m: unknown) => (typeof m === 'object' && m !== null ? (m as Message).cmd : undefined);

async function startGateway(): Promise<{ gateway: Gateway; port: number }> {
  const [hostname, port] = (process.env.BENCH_ROUTE ?? '').split('=');
  if (!hostname || !port) throw new Error('BENCH_ROUTE must be "hostname=port"');
  const pair = { certPem: readFileSync(process.env.BENCH_API_CERT ?? '', 'utf8'), keyPem: readFileSync(process.env.BENCH_API_KEY ?? '', 'utf8') };
  const routes = new MemoryRouteTable();
  await routes.add(hostname, { host: '127.0.0.1', port: Number(port) });
  const gateway = new Gateway({
    publicHost: 'api.bench.test',
    limits: LIMITS,
    routes,
    apiCert: { current: () => pair, onChange: () => () => {}, close: async () => {} },
    app: (_req, res) => res.end('ok'),
    logger: createLogger({ level: 'warn', destination: process.stderr }),
  });
  const addr = await gateway.listen('127.0.0.1', 0);
  return { gateway, port: addr.port };
}

function gc(): NodeJS.MemoryUsage {
  // For memory readings only (run with --expose-gc): retained memory, not garbage awaiting collection.
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage();
}

function exitOnStop(close: () => Promise<void>): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    close().finally(() => process.exit(0));
  };
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
}

/** One process: the gateway itself answers the driver. */
async function single(): Promise<void> {
  const { gateway, port } = await startGateway();
  process.on('message', (m: unknown) => {
    const cmd = cmdOf(m);
    if (cmd === 'metrics') process.send?.({ type: 'metrics', metrics: gateway.metrics() });
    if (cmd === 'gc') process.send?.({ type: 'gc', memory: gc() });
  });
  exitOnStop(() => gateway.close());
  process.send?.({ type: 'ready', port });
}

/** A cluster worker: a gateway on the primary's socket; answers the primary. */
async function worker(): Promise<void> {
  const { gateway, port } = await startGateway();
  process.on('message', (m: unknown) => {
    const cmd = cmdOf(m);
    if (cmd === 'metrics') process.send?.({ type: 'metrics', metrics: gateway.metrics() });
    if (cmd === 'gc') process.send?.({ type: 'gc', memory: gc() });
  });
  exitOnStop(() => gateway.close());
  process.send?.({ type: 'worker-ready', port });
}

function ask<T>(w: Worker, cmd: string, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== type) return;
      w.off('message', on);
      resolve(m as T);
    };
    w.on('message', on);
    w.send({ cmd });
  });
}

function sumMetrics(all: GatewayMetricsSnapshot[]): GatewayMetricsSnapshot {
  const total: GatewayMetricsSnapshot = { accepted: 0, routed: 0, terminated: 0, rejected: emptyRejects(), bytesUpstream: 0, bytesDownstream: 0, activeTunnels: 0, activeConnections: 0, pendingConnections: 0 };
  for (const m of all) {
    total.accepted += m.accepted;
    total.routed += m.routed;
    total.terminated += m.terminated;
    for (const r of REJECT_REASONS) total.rejected[r] += m.rejected[r];
    total.bytesUpstream += m.bytesUpstream;
    total.bytesDownstream += m.bytesDownstream;
    total.activeTunnels += m.activeTunnels;
    total.activeConnections += m.activeConnections;
    total.pendingConnections += m.pendingConnections;
  }
  return total;
}

/** The primary: binds the port (SCHED_NONE: workers accept on it directly), relays the driver's questions. */
async function primary(): Promise<void> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const workers = Array.from({ length: WORKERS }, () => cluster.fork());
  const ports = await Promise.all(workers.map((w) => new Promise<number>((resolve) => w.on('message', (m: { type?: string; port?: number }) => m.type === 'worker-ready' && resolve(m.port ?? 0)))));
  if (new Set(ports).size !== 1) throw new Error(`workers listen on different ports: ${ports.join(', ')}`);
  process.on('message', (m: unknown) => {
    const cmd = cmdOf(m);
    if (cmd === 'metrics') {
      void Promise.all(workers.map((w) => ask<{ metrics: GatewayMetricsSnapshot }>(w, 'metrics', 'metrics'))).then((rs) =>
        process.send?.({ type: 'metrics', metrics: sumMetrics(rs.map((r) => r.metrics)) }),
      );
    }
    if (cmd === 'gc') {
      void Promise.all(workers.map((w) => ask<{ memory: NodeJS.MemoryUsage }>(w, 'gc', 'gc'))).then((rs) => {
        const memory = gc();
        for (const r of rs) {
          memory.heapUsed += r.memory.heapUsed;
          memory.external += r.memory.external;
          memory.rss += r.memory.rss;
        }
        process.send?.({ type: 'gc', memory });
      });
    }
  });
  exitOnStop(async () => {
    for (const w of workers) w.kill('SIGTERM');
  });
  process.send?.({ type: 'ready', port: ports[0], workers: workers.map((w) => w.process.pid) });
}

const main = cluster.isWorker ? worker : WORKERS > 1 ? primary : single;
main().catch((err: unknown) => {
  process.stderr.write(`bench edge: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
