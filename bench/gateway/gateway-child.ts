/**
 * Our whole app for the benchmark ("gateway"), in its own process and from the production build (plain node,
 * no tsx): the composition root as `npm start` ran it in one process, gateway + API + control plane (with no
 * databaseUrl configured, that includes the embedded PGlite store). The edge alone is edge-child.ts.
 * Env: BENCH_DATA_DIR, BENCH_ROUTE ("hostname=port" on 127.0.0.1). Logs (warn) to stderr. Sends {type: 'ready', port} over IPC; answers {cmd: 'metrics'} and {cmd: 'gc'}.
 * Exits normally on disconnect or SIGTERM, so that `--cpu-prof` gets to write its profile.
 */
import { createApp } from '../../server/app.js';
import { parseConfig } from '../../core/config/load.js';
import type { Config } from '../../core/config/schema.js';
import { createLogger, type Logger } from '../../lib/log.js';
import type { GatewayMetricsSnapshot } from '../../lib/edge-metrics.js';

// Limits as open as nginx's (which has none configured): the benchmark measures speed, not admission.
const LIMITS = {
  maxConnections: 100_000,
  maxConnectionsPerIp: 100_000,
  maxTunnelsPerRoute: 100_000,
  maxPendingPerIp: 100_000,
  clientHelloTimeoutMs: 10_000,
  shutdownDrainMs: 500,
};

interface Running {
  port: number;
  metrics(): GatewayMetricsSnapshot;
  close(): Promise<void>;
}

async function startApp(config: Config, logger: Logger, hostname: string, port: number): Promise<Running> {
  const app = await createApp(config, { logger });
  await app.routes.add(hostname, { host: '127.0.0.1', port });
  const addr = await app.listen();
  return { port: addr.port, metrics: () => app.gateway.metrics(), close: () => app.close() };
}

async function main(): Promise<void> {
  const [hostname, port] = (process.env.BENCH_ROUTE ?? '').split('=');
  if (!hostname || !port) throw new Error('BENCH_ROUTE must be "hostname=port"');
  const config = parseConfig({
    listen: '127.0.0.1:0',
    publicHost: 'api.bench.test',
    sessionDomain: 'sessions.bench.test',
    dataDir: process.env.BENCH_DATA_DIR ?? '.',
    log: { level: 'warn' },
    gateway: LIMITS,
  });
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const running = await startApp(config, logger, hostname, Number(port));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    running.close().finally(() => process.exit(0));
  };
  process.on('message', (m: unknown) => {
    const cmd = typeof m === 'object' && m !== null ? (m as { cmd?: unknown }).cmd : undefined;
    if (cmd === 'metrics') process.send?.({ type: 'metrics', metrics: running.metrics() });
    if (cmd === 'gc') {
      // For memory readings only (run with --expose-gc): retained memory, not garbage awaiting collection.
      (globalThis as { gc?: () => void }).gc?.();
      process.send?.({ type: 'gc', memory: process.memoryUsage() });
    }
  });
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.send?.({ type: 'ready', port: running.port });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
