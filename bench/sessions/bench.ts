/*
 * npm run bench:sessions — session start-up and density on this host, against the real
 * Docker engine and the real image, through the real gateway and API:
 *   cold start: POST /v1/sessions with no pool → answer (xpra up, Firefox mapped, token set);
 *   pool claim: the same with a ready pool container;
 *   then the real xpra client's first login with the returned token (time to "attachable");
 *   memory and CPU of idle sessions (docker stats) and how many this host holds.
 * Options: --runs N (default 10), --idle N (default 5), --json.
 * HS_BENCH_IMAGES="before=<image>,after=<image>": measure each image in the same run (phase by
 * phase, the sides alternating), for before/after ratios on a busy host; unset, the image the
 * checkout builds.
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
const summary = (xs: number[]) => ({ p50: Math.round(pct(xs, 50)), p90: Math.round(pct(xs, 90)), p95: Math.round(pct(xs, 95)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) });

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

/**
 * The sum of Pss over the container's processes (/proc/<pid>/smaps_rollup, read as the
 * session's own uid): shared pages split among their users, so the shared libraries count
 * once across the container. The reading shell itself adds about 0.5 MiB.
 */
function pssMiB(containerId: string): number {
  const out = execFileSync('docker', ['exec', containerId, 'sh', '-c', 'cat /proc/[0-9]*/smaps_rollup 2>/dev/null'], { maxBuffer: 4 << 20 }).toString();
  let kib = 0;
  for (const m of out.matchAll(/^Pss:\s+(\d+) kB$/gm)) kib += Number(m[1]);
  return kib / 1024;
}

async function idleFootprint(api: TestApi, token: string) {
  const created: CreatedSession[] = [];
  for (let i = 0; i < IDLE; i++) created.push(await launch(api, token, { app: 'firefox' }));
  await new Promise((r) => setTimeout(r, 15_000)); // let Firefox settle
  const mem: number[] = [];
  const pss: number[] = [];
  const cpu: number[] = [];
  for (const s of created) {
    const [c] = await docker.listContainers({ filters: { label: [`org.hackstream.session=${s.session_id}`] } });
    if (!c) continue;
    pss.push(pssMiB(c.Id));
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
  const pssAvg = pss.reduce((a, b) => a + b, 0) / pss.length;
  const cpuAvg = cpu.reduce((a, b) => a + b, 0) / cpu.length;
  const hostMiB = totalmem() / 2 ** 20;
  const reserveMiB = 2048; // OS, Postgres, Redis, the control plane
  return {
    sessions: mem.length,
    memoryMiB: { avg: Math.round(memAvg), max: Math.round(Math.max(...mem)) },
    pssMiB: { avg: Math.round(pssAvg), max: Math.round(Math.max(...pss)) },
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
    await api.createUser('bench', 'bench-password-1', { quota: { max_sessions: 100, memory_mb: 2048 } });
    return await fn(api, (await api.login('bench', 'bench-password-1')).access_token);
  } finally {
    await api.close();
    // Its containers go with it: the next phase's control plane (another image, another CA)
    // would otherwise adopt this one's pool container, whose certificate it cannot verify.
    await cleanupSessions(cfg);
  }
}

/** HS_BENCH_IMAGES="label=image,…"; unset: one side, the image this checkout builds. */
function sides(): { label: string; image?: string }[] {
  const raw = process.env.HS_BENCH_IMAGES?.trim();
  if (!raw) return [{ label: 'this tree' }];
  return raw.split(',').map((part) => {
    const [label, image] = part.split('=');
    if (!label || !image) throw new Error(`HS_BENCH_IMAGES: want label=image, got ${part}`);
    return { label: label.trim(), image: image.trim() };
  });
}

const cold = async (cfg: typeof sessions) =>
  withApi(cfg, async (api, token) => {
    await launch(api, token).then((s) => api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token })); // warm the page cache
    return measure(api, token, `cold ${cfg.image ?? ''}`, async () => {});
  });
// A pool of one: each launch first waits until the pool is full again.
const pool = async (cfg: typeof sessions) =>
  withApi({ ...cfg, pool: { size: 1 } }, (api, token) =>
    measure(api, token, `pool ${cfg.image ?? ''}`, async () => {
      const end = Date.now() + 120_000;
      while (api.gw.app.sessions.poolSize() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    }),
  );

try {
  const list = sides();
  const cfgs = list.map((s) => (s.image ? { ...sessions, image: s.image } : sessions));
  // Phase by phase, the sides alternating, so a change in the host's load hits both alike.
  const colds: Awaited<ReturnType<typeof cold>>[] = [];
  for (const cfg of cfgs) colds.push(await cold(cfg));
  const pools: Awaited<ReturnType<typeof pool>>[] = [];
  for (const cfg of cfgs) pools.push(await pool(cfg));
  const idles: Awaited<ReturnType<typeof idleFootprint>>[] = [];
  for (const cfg of cfgs) idles.push(await withApi(cfg, idleFootprint));
  const load = (await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ');
  const results = list.map((side, i) => {
    const image = side.image ?? 'hackstream/firefox-xpra:latest';
    const size = execFileSync('docker', ['image', 'inspect', '--format', '{{.Size}}', image]).toString().trim();
    return { side: side.label, image, imageMiB: Math.round(Number(size) / 2 ** 20), cold: colds[i]!, pool: pools[i]!, idle: idles[i]! };
  });
  if (values.json) process.stdout.write(`${JSON.stringify({ runs: RUNS, load, results }, null, 2)}\n`);
  else {
    const lines = [`Session start-up over ${RUNS} launches each (ms); load average at the end: ${load}`, ''];
    lines.push('| side | path | descriptor p50 | p90 | p95 | logged-in xpra client p50 | p95 | cert / container / claim (avg) |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of results) {
      for (const [name, m] of [['cold (no pool)', r.cold], ['pool claim', r.pool]] as const) {
        lines.push(`| ${r.side} | ${name} | ${m.request.p50} | ${m.request.p90} | ${m.request.p95} | ${m.attach.p50} | ${m.attach.p95} | ${m.phases.certMs || '-'} / ${m.phases.containerMs || '-'} / ${m.phases.claimMs || '-'} |`);
      }
    }
    lines.push('');
    for (const r of results) {
      const idle = r.idle;
      lines.push(
        `${r.side} (${r.image}, ${r.imageMiB} MiB): idle sessions (${idle.sessions}, after 15 s): docker stats ${idle.memoryMiB.avg} MiB average, ${idle.memoryMiB.max} max; Pss sum ${idle.pssMiB.avg} MiB average, ${idle.pssMiB.max} max; ${idle.cpuPercentOfOneCore}% of one core each; this host (${idle.hostMemoryMiB} MiB) holds about ${idle.idleSessionsByMemory} idle sessions by memory (2 GiB kept for the rest).`,
      );
    }
    if (results.length === 2) {
      const [a, b] = results as [(typeof results)[0], (typeof results)[0]];
      const ratio = (x: number, y: number) => (y / x).toFixed(2);
      lines.push('', `Ratios ${b.side}/${a.side}: idle docker stats ${ratio(a.idle.memoryMiB.avg, b.idle.memoryMiB.avg)}, idle Pss ${ratio(a.idle.pssMiB.avg, b.idle.pssMiB.avg)}, cold p50 ${ratio(a.cold.request.p50, b.cold.request.p50)}, cold p90 ${ratio(a.cold.request.p90, b.cold.request.p90)}, pool p50 ${ratio(a.pool.request.p50, b.pool.request.p50)}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  }
} finally {
  await cleanupSessions(sessions);
}
