/*
 * npm run bench:sessions — session start-up and density on this host, against the real
 * Docker engine and the real image, through the real gateway and API:
 *   cold start: POST /v1/sessions with no pool → answer (xpra up, Firefox mapped, token set);
 *   pool claim: the same with a ready pool container;
 *   then the real xpra client's first login with the returned token (time to "attachable");
 *   memory and CPU of idle sessions (docker stats) and how many this host holds.
 * Options: --runs N (default 10), --idle N (default 5), --json.
 */
import { execFileSync } from 'node:child_process';
import { totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { startApi, type TestApi } from '../../test/helpers/api.js';
import { cleanupSessions, launch, target, testSessions, type CreatedSession } from '../../test/helpers/sessions.js';
import { xpraClient } from '../../test/helpers/xpra.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, idle: { type: 'string', default: '5' }, json: { type: 'boolean', default: false } } });
const RUNS = Number(values.runs);
const IDLE = Number(values.idle);
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const summary = (xs: number[]) => ({ p50: Math.round(pct(xs, 50)), p95: Math.round(pct(xs, 95)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) });

interface Phase {
  certMs?: number;
  containerMs?: number;
  claimMs?: number;
  totalMs?: number;
}

function phasesFrom(api: TestApi, sessionId: string): Phase {
  for (const l of api.logs) {
    if (!l.includes('"session ready"') || !l.includes(sessionId)) continue;
    return JSON.parse(l) as Phase;
  }
  return {};
}

async function measure(api: TestApi, token: string, label: string, before: () => Promise<void>) {
  const request: number[] = [];
  const attach: number[] = [];
  const phases: Phase[] = [];
  for (let i = 0; i < RUNS; i++) {
    await before();
    const t0 = performance.now();
    const s: CreatedSession = await launch(api, token, { app: 'firefox' });
    const t1 = performance.now();
    const r = await xpraClient('info', target(api, s.connect));
    const t2 = performance.now();
    if (r.code !== 0) throw new Error(`${label}: xpra info failed: ${r.stderr.slice(-300)}`);
    request.push(t1 - t0);
    attach.push(t2 - t0);
    phases.push(phasesFrom(api, s.session_id));
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token });
    process.stderr.write(`${label} ${i + 1}/${RUNS}: ${Math.round(t1 - t0)} ms to the descriptor, ${Math.round(t2 - t0)} ms to a logged-in xpra client\n`);
  }
  const avg = (k: keyof Phase) => Math.round(phases.reduce((a, p) => a + (p[k] ?? 0), 0) / phases.length);
  return { request: summary(request), attach: summary(attach), phases: { certMs: avg('certMs'), containerMs: avg('containerMs'), claimMs: avg('claimMs'), totalMs: avg('totalMs') } };
}

async function idleFootprint(api: TestApi, token: string) {
  const created: CreatedSession[] = [];
  for (let i = 0; i < IDLE; i++) created.push(await launch(api, token, { app: 'firefox' }));
  await new Promise((r) => setTimeout(r, 15_000)); // let Firefox settle
  const mem: number[] = [];
  const cpu: number[] = [];
  for (const s of created) {
    const [c] = await docker.listContainers({ filters: { label: [`org.hackstream.session=${s.session_id}`] } });
    if (!c) continue;
    const st = (await docker.getContainer(c.Id).stats({ stream: false })) as unknown as {
      memory_stats: { usage: number; stats?: { cache?: number; total_inactive_file?: number } };
      cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage: number; online_cpus?: number };
      precpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage: number };
    };
    const cache = st.memory_stats.stats?.total_inactive_file ?? st.memory_stats.stats?.cache ?? 0;
    mem.push((st.memory_stats.usage - cache) / 2 ** 20);
    const dc = st.cpu_stats.cpu_usage.total_usage - st.precpu_stats.cpu_usage.total_usage;
    const ds = st.cpu_stats.system_cpu_usage - st.precpu_stats.system_cpu_usage;
    cpu.push(ds > 0 ? (dc / ds) * (st.cpu_stats.online_cpus ?? 1) * 100 : 0);
  }
  for (const s of created) await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token });
  const memAvg = mem.reduce((a, b) => a + b, 0) / mem.length;
  const cpuAvg = cpu.reduce((a, b) => a + b, 0) / cpu.length;
  const hostMiB = totalmem() / 2 ** 20;
  const reserveMiB = 2048; // OS, Postgres, Redis, the control plane
  return {
    sessions: mem.length,
    memoryMiB: { avg: Math.round(memAvg), max: Math.round(Math.max(...mem)) },
    cpuPercentOfOneCore: Math.round(cpuAvg * 10) / 10,
    hostMemoryMiB: Math.round(hostMiB),
    idleSessionsByMemory: Math.floor((hostMiB - reserveMiB) / Math.max(...mem)),
  };
}

const sessions = testSessions({ pool: { size: 0 }, instanceId: 'hs-bench-sessions', network: { name: 'hs-bench-sessions', bridge: 'hsb-sessions0' } });

/** A fresh HackStream (Postgres, Redis) with these session settings and a bench user. */
async function withApi<T>(cfg: typeof sessions, fn: (api: TestApi, token: string) => Promise<T>): Promise<T> {
  const api = await startApi({ db: 'postgres', kv: 'redis', captureLogs: true, config: { sessions: cfg, log: { level: 'info' } } });
  try {
    await api.createUser('bench', 'bench-password-1', { quota: { maxSessions: 100, memoryMb: 2048 } });
    return await fn(api, (await api.login('bench', 'bench-password-1')).accessToken);
  } finally {
    await api.close();
  }
}

try {
  const image = execFileSync('docker', ['image', 'inspect', '--format', '{{.Size}}', 'hackstream/firefox-xpra:latest']).toString().trim();
  const cold = await withApi(sessions, async (api, token) => {
    await launch(api, token).then((s) => api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token })); // warm the page cache
    return measure(api, token, 'cold', async () => {});
  });
  // A pool of one: each launch first waits until the pool is full again.
  const pool = await withApi({ ...sessions, pool: { size: 1 } }, (api, token) =>
    measure(api, token, 'pool', async () => {
      const end = Date.now() + 120_000;
      while (api.gw.app.sessions.poolSize() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    }),
  );
  const idle = await withApi(sessions, idleFootprint);
  const result = { runs: RUNS, imageMiB: Math.round(Number(image) / 2 ** 20), cold, pool, idle };
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const row = (name: string, m: typeof cold) =>
      `| ${name} | ${m.request.p50} | ${m.request.p95} | ${m.attach.p50} | ${m.attach.p95} | ${m.phases.certMs || '-'} / ${m.phases.containerMs || '-'} / ${m.phases.claimMs || '-'} |`;
    process.stdout.write(
      [
        `Session start-up over ${RUNS} launches each (ms):`,
        '',
        '| path | descriptor p50 | descriptor p95 | logged-in xpra client p50 | p95 | cert / container / claim (avg) |',
        '| --- | --- | --- | --- | --- | --- |',
        row('cold (no pool)', cold),
        row('pool claim', pool),
        '',
        `Idle sessions (${idle.sessions}, after 15 s): ${idle.memoryMiB.avg} MiB average, ${idle.memoryMiB.max} MiB max, ${idle.cpuPercentOfOneCore}% of one core each;`,
        `this host (${idle.hostMemoryMiB} MiB) holds about ${idle.idleSessionsByMemory} idle sessions by memory (2 GiB kept for the rest).`,
        `Image: ${result.imageMiB} MiB.`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await cleanupSessions(sessions);
}
