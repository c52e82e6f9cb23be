/**
 * Our gateway for the benchmark, in its own process and from the production build (plain node, no tsx).
 * Env: BENCH_DATA_DIR, BENCH_ROUTE ("hostname=port" on 127.0.0.1). Logs (warn) to stderr.
 * Sends {type: 'ready', port} over IPC; answers {cmd: 'metrics'} and {cmd: 'gc'}. Exits normally on disconnect or
 * SIGTERM, so that `--cpu-prof` gets to write its profile.
 */
import { createApp } from '../../core/app.js';
import { parseConfig } from '../../core/config/load.js';
import { createLogger } from '../../core/log.js';

// Limits as open as nginx's (which has none configured): the benchmark measures speed, not admission.
const LIMITS = {
  maxConnections: 100_000,
  maxConnectionsPerIp: 100_000,
  maxPendingPerIp: 100_000,
  clientHelloTimeoutMs: 10_000,
  shutdownDrainMs: 500,
};

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
  const app = await createApp(config, { logger: createLogger({ level: 'warn', destination: process.stderr }) });
  await app.routes.add(hostname, { host: '127.0.0.1', port: Number(port) });
  const addr = await app.listen();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    app.close().finally(() => process.exit(0));
  };
  process.on('message', (m: unknown) => {
    const cmd = typeof m === 'object' && m !== null ? (m as { cmd?: unknown }).cmd : undefined;
    if (cmd === 'metrics') process.send?.({ type: 'metrics', metrics: app.gateway.metrics() });
    if (cmd === 'gc') {
      // For memory readings only (run with --expose-gc): retained memory, not garbage awaiting collection.
      (globalThis as { gc?: () => void }).gc?.();
      process.send?.({ type: 'gc', memory: process.memoryUsage() });
    }
  });
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.send?.({ type: 'ready', port: addr.port });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
