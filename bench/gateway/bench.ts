/**
 * Side-by-side benchmark (run through bench/gateway/run.sh, which builds this with tsc first):
 * direct to the backend, nginx `stream` + `ssl_preread`, and our gateway (whole app, and edge only), all in front of the same
 * TLS backend process, measured in the same run, round after round with the target order rotated.
 * Results: a table on stdout, JSON + Markdown in bench/results/.
 *
 * Env knobs: BENCH_ROUNDS (5), BENCH_RATE_SECONDS (8), BENCH_NODE_RATE_SECONDS (4), BENCH_CONCURRENCY (32),
 * BENCH_LATENCY_N (1000), BENCH_BULK_MB (512), BENCH_IDLE (1000), BENCH_NGINX_WORKERS (1), BENCH_MAX_FOREIGN (10, %),
 * BENCH_KEY (ec | rsa), BENCH_PHASES (rate,latency,bulk,idle), BENCH_TARGETS (direct,nginx,gateway,gateway-edge:
 * "gateway" is the whole app as `npm start` runs it, "gateway-edge" the gateway alone, see gateway-child.ts),
 * BENCH_PROTOTYPE (e.g. "pipe,hwm,onread": extra relay-prototype.ts targets), BENCH_EDGE_WORKERS ("1": the edge as one
 * process; "2" or "1,2": also/instead a `cluster` of that many edge workers, targets "gateway-edge-<n>w", see edge-child.ts),
 * BENCH_GATEWAY_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" or "--trace-gc"), BENCH_IDLE_GC (0: no forced GC
 * around the idle-tunnel RSS readings),
 * BENCH_CHILD_OUTPUT (a directory: each Node router's output is saved there as <name>.log), BENCH_TMP.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GatewayMetricsSnapshot } from '../../lib/edge-metrics.js';
import { bulkDown, bulkUp, latency, nodeRate, openIdle, wrk, type Endpoint } from './clients.js';
import { startNginx, type Nginx } from './nginx.js';
import { machineUserMs, pssBytes, quantile, rssBytes, sleep, startChild, totalCpuMs, userMs, type Child } from './proc.js';
import { f, figures, figureTable, targetTable, type IdleResult, type Results, type RoundResult } from './report.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository root (run.sh runs from there); the compiled driver itself lives in the build directory. */
const REPO = resolve(process.env.BENCH_REPO ?? process.cwd());
const LUA = join(REPO, 'bench', 'gateway', 'loopback.lua');
const HOST = 's1.sessions.bench.test';

const num = (name: string, def: number) => {
  const v = Number(process.env[name] ?? def);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const CFG = {
  rounds: num('BENCH_ROUNDS', 5),
  rateSeconds: num('BENCH_RATE_SECONDS', 8),
  nodeRateSeconds: num('BENCH_NODE_RATE_SECONDS', 4),
  concurrency: num('BENCH_CONCURRENCY', 32),
  latencyN: num('BENCH_LATENCY_N', 1000),
  bulkBytes: num('BENCH_BULK_MB', 512) * 1024 * 1024,
  idle: num('BENCH_IDLE', 1000),
  nginxWorkers: num('BENCH_NGINX_WORKERS', 1),
  maxForeign: num('BENCH_MAX_FOREIGN', 10),
  key: process.env.BENCH_KEY === 'rsa' ? 'rsa' : 'ec',
  /** Which measurements to run (profiling one at a time is easier to read). */
  phases: new Set((process.env.BENCH_PHASES ?? 'rate,latency,bulk,idle').split(',').map((p) => p.trim())),
  targets: (process.env.BENCH_TARGETS ?? 'direct,nginx,gateway,gateway-edge').split(',').map((p) => p.trim()),
  /** Extra targets: relay-prototype.ts in these modes (pipe, hwm, onread), to test the suggested fixes. */
  prototypes: (process.env.BENCH_PROTOTYPE ?? '').split(',').map((p) => p.trim()).filter(Boolean),
  /** Edge worker counts to measure; 1 is the plain process ("gateway-edge"), n > 1 a cluster ("gateway-edge-<n>w"). */
  edgeWorkers: (process.env.BENCH_EDGE_WORKERS ?? '1').split(',').map((p) => Number(p.trim())),
};
for (const n of CFG.edgeWorkers) if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error('BENCH_EDGE_WORKERS must list worker counts (1–64)');
const PHASES = ['rate', 'latency', 'bulk', 'idle'];
for (const p of CFG.phases) if (!PHASES.includes(p)) throw new Error(`BENCH_PHASES: unknown phase ${p} (${PHASES.join(', ')})`);

interface Target {
  name: string;
  endpoint: Endpoint;
  /** The router's processes (none for direct). */
  pids(): number[];
  /** Forces a full GC in a Node router before a memory reading (needs --expose-gc there); returns heap + external bytes. */
  gc?(): Promise<number>;
  /** Open tunnels as the router counts them, to check the idle measurement. */
  tunnels?(): Promise<number>;
}

const cleanups: Array<() => Promise<void>> = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
}

function makeCert(dir: string, host = HOST, name = 'backend'): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const newkey = CFG.key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  execFileSync('openssl', ['req', '-x509', ...newkey, '-nodes', '-days', '2', '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/** A process and its children (cluster workers), as the kernel lists them. */
function withChildren(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...kids];
  } catch {
    return [pid];
  }
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Every process of ours that runs during a measurement (the driver's reaped children, e.g. wrk, count via 'self'). */
let ourPids: () => number[] = () => [];

async function measure(t: Target): Promise<RoundResult> {
  const pids = t.pids();
  const on = (p: string) => CFG.phases.has(p);
  const ours = () => userMs('self', true) + ourPids().reduce((s, p) => s + userMs(p), 0);
  const [machine0, ours0, wall0] = [machineUserMs(), ours(), Date.now()];
  let cpu0 = totalCpuMs(pids);
  const w = on('rate') ? await wrk(t.endpoint, LUA, CFG.concurrency, CFG.rateSeconds) : { perSecond: NaN, errors: 0, requests: NaN };
  const cpuPer1k = pids.length ? ((totalCpuMs(pids) - cpu0) / w.requests) * 1000 : NaN;
  if (on('rate')) await sleep(500);
  const n = on('rate') ? await nodeRate(t.endpoint, CFG.concurrency, CFG.nodeRateSeconds) : { perSecond: NaN, errors: 0 };
  if (on('rate')) await sleep(300);
  const lat = on('latency') ? await latency(t.endpoint, CFG.latencyN) : [];
  const totals = lat.map((p) => p.totalMs);
  cpu0 = totalCpuMs(pids);
  const down = on('bulk') ? await bulkDown(t.endpoint, CFG.bulkBytes) : NaN;
  const up = on('bulk') ? await bulkUp(t.endpoint, CFG.bulkBytes) : NaN;
  const cpuPerGB = pids.length ? (totalCpuMs(pids) - cpu0) / 1000 / ((2 * CFG.bulkBytes) / 1e9) : NaN;
  return {
    wrkPerSecond: w.perSecond,
    wrkErrors: w.errors,
    wrkRequests: w.requests,
    nodePerSecond: n.perSecond,
    nodeErrors: n.errors,
    latP50: quantile(totals, 0.5),
    latP90: quantile(totals, 0.9),
    latP99: quantile(totals, 0.99),
    hsP50: quantile(
      lat.map((p) => p.handshakeMs),
      0.5,
    ),
    downMBs: down,
    upMBs: up,
    cpuPer1k,
    cpuPerGB,
    foreignCpuPct: (100 * (machineUserMs() - machine0 - (ours() - ours0))) / ((Date.now() - wall0) * cpus().length),
  };
}

async function idleTunnels(t: Target): Promise<IdleResult> {
  const pids = t.pids();
  const rss = () => pids.reduce((sum, p) => sum + rssBytes(p), 0);
  await sleep(1000);
  const js0 = (await t.gc?.()) ?? NaN;
  const before = rss();
  const sockets = await openIdle(t.endpoint, CFG.idle);
  try {
    await sleep(2000);
    const open = await t.tunnels?.();
    if (open !== undefined && open !== CFG.idle) throw new Error(`${t.name}: ${open} tunnels open, expected ${CFG.idle}`);
    const rawAfter = rss();
    const js1 = (await t.gc?.()) ?? NaN;
    const after = rss();
    const pssAfter = pids.reduce((sum, p) => sum + pssBytes(p), 0);
    return { before, after, rawAfter, pssAfter, perTunnelKB: (after - before) / 1024 / CFG.idle, jsPerTunnelKB: (js1 - js0) / 1024 / CFG.idle };
  } finally {
    for (const s of sockets) s.destroy();
    await sleep(1000);
  }
}

/** Starts our gateway (or a prototype relay) as a Node child and describes it as a target. */
async function nodeRouter(name: string, script: string, env: Record<string, string>, execArgv: string[]): Promise<Target> {
  const child: Child<{ port: number }> = await startChild(join(HERE, script), env, ['--expose-gc', ...execArgv]);
  cleanups.push(async () => {
    await child.stop();
    const out = child.stderr().trim();
    if (out && process.env.BENCH_CHILD_OUTPUT) writeFileSync(join(process.env.BENCH_CHILD_OUTPUT, `${name}.log`), out);
  });
  return {
    name,
    endpoint: { port: child.ready.port, servername: HOST, ca: '' },
    pids: () => (child.proc.pid ? withChildren(child.proc.pid) : []),
    async gc() {
      if (process.env.BENCH_IDLE_GC === '0') return NaN;
      const { memory } = await child.ask<{ memory: NodeJS.MemoryUsage }>('gc', 'gc');
      return memory.heapUsed + memory.external;
    },
    ...(script === 'gateway-child.js' || script === 'edge-child.js'
      ? { tunnels: async () => (await child.ask<{ metrics: GatewayMetricsSnapshot }>('metrics', 'metrics')).metrics.activeTunnels }
      : {}),
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  const tmp = process.env.BENCH_TMP ?? mkdtempSync(join(tmpdir(), 'hs-bench-'));
  mkdirSync(tmp, { recursive: true });
  if (!process.env.BENCH_TMP) cleanups.push(async () => rmSync(tmp, { recursive: true, force: true }));
  const log = (m: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s] ${m}\n`);
  const load0 = loadavg();
  log(`config ${JSON.stringify({ ...CFG, phases: [...CFG.phases] })}; load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);

  const { cert, key } = makeCert(tmp);
  const ca = readFileSync(cert, 'utf8');
  const backend: Child<{ port: number }> = await startChild(join(HERE, 'backend.js'), { BENCH_CERT: cert, BENCH_KEY: key });
  cleanups.push(() => backend.stop());
  const route = `${HOST}=${backend.ready.port}`;
  const nginxPort = await freePort();
  const nginx: Nginx = await startNginx({ dir: tmp, port: nginxPort, hostname: HOST, backendPort: backend.ready.port, workers: CFG.nginxWorkers });
  cleanups.push(() => nginx.stop());
  const dataDir = join(tmp, 'gateway-data');
  mkdirSync(dataDir, { recursive: true });
  const gwArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);

  const targets: Target[] = [
    { name: 'direct', endpoint: { port: backend.ready.port, servername: HOST, ca: '' }, pids: () => [] },
    { name: 'nginx', endpoint: { port: nginxPort, servername: HOST, ca: '' }, pids: () => nginx.pids() },
  ];
  if (CFG.targets.includes('gateway')) targets.push(await nodeRouter('gateway', 'gateway-child.js', { BENCH_DATA_DIR: dataDir, BENCH_ROUTE: route }, gwArgs));
  if (CFG.targets.includes('gateway-edge')) {
    // The edge's API certificate from openssl, as for the backend: the edge process imports nothing from core/.
    const api = makeCert(tmp, 'api.bench.test', 'edge-api');
    for (const n of CFG.edgeWorkers) {
      const name = n === 1 ? 'gateway-edge' : `gateway-edge-${n}w`;
      const env = { BENCH_ROUTE: route, BENCH_API_CERT: api.cert, BENCH_API_KEY: api.key, BENCH_EDGE_WORKERS: String(n) };
      targets.push(await nodeRouter(name, 'edge-child.js', env, gwArgs));
    }
  }
  for (const mode of CFG.prototypes) targets.push(await nodeRouter(`prototype-${mode}`, 'relay-prototype.js', { BENCH_ROUTE: route, BENCH_RELAY_MODE: mode }, []));
  for (const t of targets) t.endpoint.ca = ca;
  ourPids = () => [backend.proc.pid ?? 0, ...targets.flatMap((t) => t.pids())];
  const active = targets.filter((t) => CFG.targets.includes(t.name) || t.name.startsWith('prototype-') || t.name.startsWith('gateway-edge'));
  log(`backend :${backend.ready.port}; ${targets.map((t) => `${t.name} :${t.endpoint.port} (pids ${t.pids().join(',') || '–'})`).join('; ')}`);

  // Memory first, while the routers are fresh: what the idle tunnels cost on top of a process at rest.
  const idle: Record<string, IdleResult> = {};
  if (CFG.phases.has('idle')) {
    // The prototypes too: holding and closing 1,000 tunnels changes how V8 collects afterwards (see docs/benchmarks.md).
    for (const t of active.filter((x) => x.name !== 'direct')) {
      idle[t.name] = await idleTunnels(t);
      log(`idle ${t.name}: ${JSON.stringify(idle[t.name])}`);
    }
  }

  // Warm-up (JIT, buffers, TCP) so that round 1 is not special.
  for (const t of active) {
    await latency(t.endpoint, 200);
    if (!CFG.phases.has('bulk')) continue;
    await bulkDown(t.endpoint, 64 * 1024 * 1024);
    await bulkUp(t.endpoint, 64 * 1024 * 1024);
  }

  const results: Results = Object.fromEntries(active.map((t) => [t.name, [] as RoundResult[]]));
  for (let round = 0; round < CFG.rounds; round++) {
    // Stored per target in round order; the running order rotates to spread drift over the targets.
    for (let k = 0; k < active.length; k++) {
      const t = active[(k + round) % active.length] as Target;
      const r = await measure(t);
      results[t.name]?.push(r);
      log(`round ${round + 1} ${t.name}: wrk ${f(r.wrkPerSecond)}/s, node ${f(r.nodePerSecond)}/s, p50 ${f(r.latP50, 3)} ms, p99 ${f(r.latP99, 3)} ms, down ${f(r.downMBs)} MB/s, up ${f(r.upMBs)} MB/s; foreign CPU ${f(r.foreignCpuPct, 1)}%`);
      await sleep(500);
    }
  }

  const backendStats = await backend.ask<{ connections: number; resumed: number }>('stats', 'stats');
  if (backendStats.resumed !== 0) throw new Error(`${backendStats.resumed} TLS sessions were resumed; the figures would not be full handshakes`);
  const load1 = loadavg();
  const header =
    `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Linux ${release()}, Node ${process.version}, ` +
    `${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '')}, wrk ${/wrk \S*?(\d[\w.-]*)/.exec(spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout)?.[1] ?? '?'}. ` +
    `Backend key ${CFG.key}; nginx workers ${CFG.nginxWorkers}; ${CFG.rounds} rounds; ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
    `load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start, ${load1.map((x) => x.toFixed(2)).join(' ')} at end.\n` +
    `Backend: ${backendStats.connections} TLS connections, ${backendStats.resumed} resumed. Errors per round: ` +
    Object.entries(results).map(([t, rs]) => `${t} wrk ${rs.map((r) => r.wrkErrors).join('/')}, Node ${rs.map((r) => r.nodeErrors).join('/')}`).join('; ') +
    '.\n';
  // On a shared machine other people's jobs steal CPU mid-run: keep only rounds in which no target saw more
  // than BENCH_MAX_FOREIGN % foreign CPU, as long as at least 3 such rounds remain.
  const clean = Array.from({ length: CFG.rounds }, (_, i) => i).filter((i) => Object.values(results).every((rs) => (rs[i]?.foreignCpuPct ?? 0) < CFG.maxForeign));
  const kept: Results = clean.length >= 3 ? Object.fromEntries(Object.entries(results).map(([t, rs]) => [t, clean.map((i) => rs[i] as RoundResult)])) : results;
  const note =
    clean.length >= 3
      ? `Medians of the ${clean.length} of ${CFG.rounds} rounds with < ${CFG.maxForeign} % foreign CPU (rounds ${clean.map((i) => i + 1).join(', ')}) [min–max].`
      : `Medians of all ${CFG.rounds} rounds [min–max]. **Only ${clean.length} rounds had < ${CFG.maxForeign} % foreign CPU: the machine was busy, treat these figures with care.**`;
  const figs = figures(kept, idle);
  let md = `${header}\n${targetTable(kept, idle, CFG)}\n\n${note}\n\n${figureTable(figs)}\n`;
  for (const t of active.filter((x) => !['direct', 'nginx', 'gateway'].includes(x.name))) md += `\n${figureTable(figures(kept, idle, t.name), t.name)}\n`;
  process.stdout.write(`\n${md}`);
  const out = join(REPO, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(out, `gateway-${stamp}.md`), md);
  writeFileSync(join(out, `gateway-${stamp}.json`), JSON.stringify({ config: { ...CFG, phases: [...CFG.phases] }, results, idle, backendStats, figures: figs }, null, 2));
  log(`results in bench/results/gateway-${stamp}.{md,json}`);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

main()
  .then(cleanup)
  .catch(async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanup();
    process.exitCode = 1;
  });
