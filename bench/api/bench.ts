/**
 * API benchmark driver (run through run.sh, compiled). Starts HackStream (`server/main.js` of the
 * same build) in a child process on 127.0.0.1 with a fresh data dir, logs in as the bootstrap
 * admin, then measures through the gateway's TLS termination:
 *
 * - `GET /v1/me` with a bearer token (answered from the principal cache; the KV read and the
 *   user query happen once per token per cache TTL) and `GET /health` (no auth) for reference:
 *   autocannon, fixed connections, fixed duration;
 * - login latency, one at a time, with the production Argon2id cost (core/auth/settings.ts).
 *
 * Options: --connections N (50), --duration S (10), --logins N (40),
 * --db embedded|postgres (embedded; postgres uses HACKSTREAM_TEST_DATABASE_URL in a schema of
 * its own, plus HACKSTREAM_TEST_REDIS_URL for the KV), --cpu-prof DIR (the server writes a V8 CPU profile there on exit).
 *
 * The server's CPU time (utime + stime from /proc) is read around each autocannon run, so the
 * table gives its CPU per request: what the control side costs, gateway TLS included.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import pg from 'pg';
import { authSettings } from '../../core/auth/settings.js';

const ARGON2 = authSettings().argon2;

const HOST = 'hackstream.bench';
const ADMIN = { username: 'bench-admin', password: 'bench admin password 1' };

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : def;
}

const connections = Number(arg('connections', '50'));
const duration = Number(arg('duration', '10'));
const logins = Number(arg('logins', '40'));
const db = arg('db', 'embedded');
const cpuProf = arg('cpu-prof', '');
const repo = process.env.BENCH_REPO ?? process.cwd();
const mainJs = join(import.meta.dirname, '../../server/main.js');

interface Server {
  child: ChildProcess;
  port: number;
  ca: string;
}

async function startServer(dataDir: string, env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, [...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : []), mainJs], {
    cwd: repo,
    env: {
      PATH: process.env.PATH ?? '',
      HACKSTREAM_LISTEN: '127.0.0.1:0',
      HACKSTREAM_DATA_DIR: dataDir,
      HACKSTREAM_PUBLIC_HOST: HOST,
      HACKSTREAM_ADMIN_USER: ADMIN.username,
      HACKSTREAM_ADMIN_PASSWORD: ADMIN.password,
      // No pre-warmed session container: it would outlive the run (sessions are kept across restarts).
      HACKSTREAM_POOL_SIZE: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (line.includes('"msg":"hackstream listening"')) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, port, ca: readFileSync(join(dataDir, 'certs/ca.crt'), 'utf8') };
}

function post(s: Server, path: string, body: unknown, agent: https.Agent): Promise<{ status: number; json: unknown }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: s.port, path, method: 'POST', ca: s.ca, servername: HOST, agent, headers: { host: HOST, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * User + system CPU time so far, in ms, of the server and every process under it (npm start
 * is a supervisor with edge, control, agent and store children), plus what its exited
 * children left (cutime/cstime). Linux /proc; clock ticks of 10 ms.
 */
function cpuMs(root: number): number {
  const stats = new Map<number, { ppid: number; ms: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const f = readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      stats.set(Number(name), { ppid: Number(f[1]), ms: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 10 });
    } catch {
      // Gone between the listing and the read.
    }
  }
  let total = 0;
  for (const [pid, st] of stats) {
    for (let p = pid, hops = 0; p > 1 && hops < 16; p = stats.get(p)?.ppid ?? 0, hops++) {
      if (p === root) {
        total += st.ms;
        break;
      }
    }
  }
  return total;
}

interface Run {
  r: autocannon.Result;
  /** Server CPU per request, µs. */
  cpuUs: number;
}

async function cannon(s: Server, path: string, token?: string): Promise<Run> {
  const before = cpuMs(s.child.pid!);
  const r = await autocannon({
    url: `https://127.0.0.1:${s.port}${path}`,
    connections,
    duration,
    servername: HOST,
    tlsOptions: { ca: s.ca },
    headers: { host: HOST, ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { r, cpuUs: ((cpuMs(s.child.pid!) - before) * 1000) / Math.max(1, r.requests.total) };
}

function pct(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hs-bench-api-'));
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  // info: the server logs one line per request, as in production (and its port, read above).
  const env: Record<string, string> = { HACKSTREAM_LOG_LEVEL: 'info' };
  if (db === 'postgres') {
    const url = process.env.HACKSTREAM_TEST_DATABASE_URL ?? 'postgres://hackstream_test:hackstream_test@127.0.0.1:5432/hackstream_test';
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.end();
    const u = new URL(url);
    u.searchParams.set('options', `-c search_path=${schema}`);
    env.HACKSTREAM_DATABASE_URL = u.toString();
    env.HACKSTREAM_REDIS_URL = process.env.HACKSTREAM_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
    // A key prefix of its own (config file: redisPrefix has no env override).
    writeFileSync(join(dataDir, 'bench-config.json'), JSON.stringify({ redisPrefix: `${schema}:` }));
    env.HACKSTREAM_CONFIG = join(dataDir, 'bench-config.json');
  }
  const server = await startServer(dataDir, env);
  // Keep the pipe drained: the server logs a line per request at info.
  server.child.stdout?.resume();
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const login = await post(server, '/v1/login', ADMIN, agent);
    if (login.status !== 200) throw new Error(`login failed: ${login.status} ${JSON.stringify(login.json)}`);
    const token = (login.json as { access_token: string }).access_token;

    const times: number[] = [];
    for (let i = 0; i < logins + 3; i++) {
      const t = performance.now();
      const r = await post(server, '/v1/login', ADMIN, agent);
      if (r.status !== 200) throw new Error(`login ${i}: ${r.status}`);
      if (i >= 3) times.push(performance.now() - t);
    }

    await cannon(server, '/health'); // warm-up (JIT, pools)
    const health = await cannon(server, '/health');
    const me = await cannon(server, '/v1/me', token);
    const row = (name: string, { r, cpuUs }: Run) =>
      `| \`GET ${name}\` | ${Math.round(r.requests.average)} | ${r.latency.p50} | ${r.latency.p99} | ${r.latency.max} | ${r.non2xx} | ${r.errors + r.timeouts} | ${Math.round(cpuUs)} |`;
    const out = [
      `### API (${db === 'postgres' ? 'Postgres + Redis' : 'embedded PostgreSQL + in-process KV'}), ${new Date().toISOString().slice(0, 10)}`,
      '',
      `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; server and autocannon on the same machine (loopback);`,
      `${connections} connections, ${duration} s, keep-alive, TLS 1.3 through the gateway; server logs one JSON line per request (info).`,
      '',
      '| request | req/s (mean) | p50 ms | p99 ms | max ms | non-2xx | errors | server CPU µs/req |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      row('/health', health),
      row('/v1/me', me),
      '',
      `Login (\`POST /v1/login\`, Argon2id m=${ARGON2.memoryCost} KiB, t=${ARGON2.timeCost}, p=${ARGON2.parallelism}, one at a time, ${logins} runs): p50 ${pct(times, 0.5).toFixed(1)} ms, p90 ${pct(times, 0.9).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms.`,
      '',
    ].join('\n');
    process.stdout.write(`${out}\n`);
  } finally {
    agent.destroy();
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
    if (db === 'postgres') {
      const client = new pg.Client({ connectionString: process.env.HACKSTREAM_TEST_DATABASE_URL ?? 'postgres://hackstream_test:hackstream_test@127.0.0.1:5432/hackstream_test' });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:api: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
