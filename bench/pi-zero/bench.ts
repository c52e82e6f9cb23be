/*
 * npm run bench:pi-zero — the xpra client a Raspberry Pi Zero would run (Debian's armel xpra
 * 3.1 under qemu-user), boxed like one (512 MB, no swap, one core slowed by a CFS quota
 * calibrated against a published Pi Zero figure), attached through the real CLI to a real
 * session (gateway + API on Postgres + Redis, the Docker engine and the session image), showing
 * on a host Xvfb. Per --quality, in the same run:
 *   memory: RSS and PSS (smaps_rollup) summed over the box's processes — under qemu-user these
 *     are the emulator's processes, so the figures include qemu's own code and translation
 *     cache — and the box's peak charge and swap;
 *   fps while scrolling the long page: distinct grabs of the page area (probe.py) per second;
 *   keystroke → pixel: xdotool types into the page's input, time until the box's pixels change;
 *   CPU: the box's cpuacct/cpu.stat over each window; bytes/s: tcp_info of the box's sockets.
 * Options: --qualities low,auto  --rounds 1  --keys 30  --scroll-seconds 15  --idle-seconds 10
 *   --settle 10  --quota-us N (skip the calibration)  --shots DIR (screenshots after typing and
 *   after scrolling)  --variant 'NAME=PRESET OPTION...' (repeatable: a preset with more xpra
 *   options appended, measured as NAME in the same rounds, to try options before changing
 *   client/quality.ts; the word @native runs the host's amd64 xpra outside the box instead, as a
 *   reference for what the server side delivers)  --json. Progress on stderr.
 * PIZ_ROOT: the armel rootfs (run.sh builds it with rootfs.sh).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../lib/log.js';
import { ensureSessionNetwork } from '../../agent/network.js';
import { startApi, type TestApi } from '../../test/helpers/api.js';
import { runCli, spawnCli, type RunningCli } from '../../test/helpers/cli.js';
import { screenshot, startXvfb, xdotool, type Box as Rect, type Display } from '../../test/helpers/display.js';
import { PUBLIC_HOST } from '../../test/helpers/gateway.js';
import { cleanupSessions, docker, testSessions } from '../../test/helpers/sessions.js';
import { MARK, PAGES } from '../client/page.js';
import { tcpBytesOf } from '../client/proc.js';
import { createBox, PERIOD_US, rollup, type Box } from './cgroup.js';
import { report, type Calibration, type Run } from './report.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    qualities: { type: 'string', default: 'low,auto' },
    rounds: { type: 'string', default: '1' },
    keys: { type: 'string', default: '30' },
    'scroll-seconds': { type: 'string', default: '15' },
    'idle-seconds': { type: 'string', default: '10' },
    settle: { type: 'string', default: '10' },
    shots: { type: 'string' },
    'quota-us': { type: 'string' },
    variant: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
  },
});
const ROOTFS = process.env.PIZ_ROOT ?? '';
if (!ROOTFS) throw new Error('PIZ_ROOT is not set (run through bench/pi-zero/run.sh)');
const HERE = fileURLToPath(new URL('.', import.meta.url));
const WRAPPER = join(HERE, 'xpra-armel');
const PROBE = join(HERE, 'probe.py');
const QUALITIES = values.qualities.split(',').filter(Boolean);
/** name → the preset it starts from and the options appended (PIZ_XPRA_EXTRA, read by xpra-armel). */
const VARIANTS = new Map(
  (values.variant ?? []).map((v) => {
    const [name = '', rest = ''] = v.split(/=(.*)/s);
    const [preset = 'low', ...words] = rest.trim().split(/\s+/);
    return [name, { preset, extra: words.filter((w) => w !== '@native'), native: words.includes('@native') }] as const;
  }),
);
const ROUNDS = Number(values.rounds);
const KEYS = Number(values.keys);
const SCROLL_S = Number(values['scroll-seconds']);
const IDLE_S = Number(values['idle-seconds']);
const SETTLE_MS = Number(values.settle) * 1000;
/** Pi Zero (BCM2835, 1 GHz): `openssl speed -elapsed -evp aes-256-cbc`, 16 KiB blocks, kB/s (sbc-bench's results: 17060 and 16820). */
const PI_ZERO_AES_KBPS = 16940;
const MEMORY = 512 * 1024 * 1024;
/** The host core the box is pinned to (the last one). */
const CPU = cpus().length - 1;
const FIND = { tolerance: 40, minCount: 20_000 } as const;
const USER = { username: 'bench', password: 'Bench-PiZero-Password-1' };

const progress = (s: string) => process.stderr.write(`[pi-zero ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The long page of bench/client with an input under the colour block, for the keystrokes. */
const INPUT = '<input id="k" autofocus autocomplete="off" spellcheck="false" style="display:block;margin:12px 24px;width:80%;font:28px/1.2 monospace;padding:6px;border:2px solid #000;caret-color:transparent">';
const PAGE = (PAGES['/long'] ?? '').replace('</div>', `</div>${INPUT}`);

async function servePage(host: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://${host}:${port}/pi-zero`, close: () => new Promise((r) => server.close(() => r())) };
}

/** A command run inside a box: a shell joins it, then execs the command. */
function inBox(box: Box, cmd: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('bash', ['-c', 'for f in $PIZ_CGROUP_PROCS; do echo $$ >"$f"; done; exec "$@"', 'inbox', ...cmd], {
    env: { ...process.env, PIZ_CGROUP_PROCS: box.procsFiles.join(' ') },
    maxBuffer: 1 << 20,
  });
}

/** kB/s per CPU second (elapsed: per wall second, what a box delivers on this busy host). */
async function aesKBps(box: Box, elapsed: boolean): Promise<number> {
  const { stdout } = await inBox(box, ['chroot', ROOTFS, 'openssl', 'speed', ...(elapsed ? ['-elapsed'] : []), '-seconds', '3', '-bytes', '16384', '-evp', 'aes-256-cbc']);
  const m = /^AES-256-CBC\s+([\d.]+)k/im.exec(stdout);
  if (!m?.[1]) throw new Error(`no AES-256-CBC figure in openssl's output:\n${stdout}`);
  return Number(m[1]);
}

/**
 * The quota that makes the armel openssl under qemu run at a Pi Zero's AES speed: its speed per
 * CPU second on one host core (user time, so other work on the host does not skew it), then a
 * check inside the box in wall-clock time (-elapsed, as sbc-bench measured the Pi).
 */
async function calibrate(): Promise<Calibration> {
  const full = createBox('hackstream-pi-zero-full', { memoryBytes: MEMORY, quotaUs: PERIOD_US, cpu: CPU });
  try {
    const fullKBps = await aesKBps(full, false);
    const quotaUs = values['quota-us'] ? Number(values['quota-us']) : Math.min(PERIOD_US, Math.max(1000, Math.round((PERIOD_US * PI_ZERO_AES_KBPS) / fullKBps)));
    const boxed = createBox('hackstream-pi-zero-calibrate', { memoryBytes: MEMORY, quotaUs, cpu: CPU });
    try {
      const boxedKBps = await aesKBps(boxed, true);
      return { piZeroKBps: PI_ZERO_AES_KBPS, fullCoreKBps: fullKBps, quotaUs, boxedKBps };
    } finally {
      boxed.remove();
    }
  } finally {
    full.remove();
  }
}

interface Sample {
  t: number;
  cpuNs: number;
  down: number;
  up: number;
}

async function sample(box: Box, port: number): Promise<Sample> {
  let down = 0;
  let up = 0;
  for (const pid of box.pids()) {
    const b = await tcpBytesOf(pid, port);
    down += b.down;
    up += b.up;
  }
  return { t: performance.now(), cpuNs: box.usageNs(), down, up };
}

function window(a: Sample, b: Sample, quotaUs: number) {
  const s = (b.t - a.t) / 1000;
  const core = (b.cpuNs - a.cpuNs) / 1e9 / s;
  return {
    seconds: Math.round(s * 10) / 10,
    hostCorePct: Math.round(core * 1000) / 10,
    /** Share of the simulated Pi's CPU (the quota) used. */
    piCpuPct: Math.round((core / (quotaUs / PERIOD_US)) * 1000) / 10,
    downBps: Math.round((b.down - a.down) / s),
    upBps: Math.round((b.up - a.up) / s),
  };
}

async function probe(display: Display, args: (string | number)[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('/usr/bin/python3', [PROBE, ...args.map(String)], { env: { ...process.env, DISPLAY: display.name }, timeout: 600_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

async function waitVisible(display: Display, cli: RunningCli, ms: number): Promise<Rect> {
  const end = performance.now() + ms;
  let next = 0;
  for (;;) {
    const box = (await screenshot(display)).find(MARK, FIND);
    if (box) return box;
    if (/hackstream: /.test(cli.stderr())) throw new Error(`the CLI failed:\n${cli.stderr().slice(-3000)}`);
    if (performance.now() > end) throw new Error(`the page did not show within ${ms} ms; CLI stderr:\n${cli.stderr().slice(-3000)}`);
    if (performance.now() > next) {
      progress(`waiting for the page (${Math.round((end - performance.now()) / 1000)} s left)`);
      next = performance.now() + 30_000;
    }
    await sleep(500);
  }
}

interface Ctx {
  api: TestApi;
  token: string;
  home: string;
  display: Display;
  url: string;
  quotaUs: number;
}

async function attached(ctx: Ctx, quality: string, round: number): Promise<Run> {
  const box = createBox('hackstream-pi-zero-client', { memoryBytes: MEMORY, quotaUs: ctx.quotaUs, cpu: CPU });
  const variant = VARIANTS.get(quality);
  const t0 = performance.now();
  const cli = spawnCli(['launch', 'browser', '--url', ctx.url, '--quality', variant?.preset ?? quality], {
    home: ctx.home,
    env: {
      DISPLAY: ctx.display.name,
      HACKSTREAM_XPRA: WRAPPER,
      PIZ_ROOT: ROOTFS,
      PIZ_CGROUP_PROCS: variant?.native ? '' : box.procsFiles.join(' '),
      PIZ_XPRA_EXTRA: variant?.extra.join(' ') ?? '',
      PIZ_NATIVE: variant?.native ? '1' : '',
    },
  });
  let id: string | undefined;
  try {
    const mark = await waitVisible(ctx.display, cli, 900_000);
    const visibleMs = Math.round(performance.now() - t0);
    id = /Session ([0-9a-f-]{36}) is/.exec(cli.stderr())?.[1];
    progress(`${quality}: page visible after ${visibleMs} ms; settling ${SETTLE_MS / 1000} s`);
    await sleep(SETTLE_MS);
    const processes = box.pids().map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 140));
    const memSettled = rollup(box.pids());
    const a = await sample(box, ctx.api.port);
    await sleep(IDLE_S * 1000);
    const b = await sample(box, ctx.api.port);
    // Focus the input (no window manager: a click gives xpra's window the pointer and the page the focus).
    const input = { x: mark.x, y: mark.y + mark.height, w: mark.width, h: 70 };
    await xdotool(ctx.display, ['mousemove', String(input.x + 60), String(input.y + 35), 'click', '1']);
    await sleep(1000);
    progress(`${quality}: ${KEYS} keystrokes`);
    const c = await sample(box, ctx.api.port);
    const keys = await probe(ctx.display, ['keys', input.x, input.y, input.w, input.h, KEYS]);
    if (values.shots) (await screenshot(ctx.display)).save(join(values.shots, `${quality}-${round}-typed.png`));
    const d = await sample(box, ctx.api.port);
    progress(`${quality}: keys p50 ${String(keys.p50)} ms p95 ${String(keys.p95)} ms; scrolling ${SCROLL_S} s`);
    const area = { x: mark.x, y: mark.y, w: mark.width, h: Math.min(500, ctx.display.height - mark.y - 10) };
    const e = await sample(box, ctx.api.port);
    const scroll = await probe(ctx.display, ['fps', area.x, area.y, area.w, area.h, SCROLL_S, 10]);
    const f = await sample(box, ctx.api.port);
    const memScrolled = rollup(box.pids());
    const after = await screenshot(ctx.display);
    const scrolled = !after.find(MARK, FIND);
    if (values.shots) after.save(join(values.shots, `${quality}-${round}-scrolled.png`));
    progress(`${quality}: ${String(scroll.fps)} fps while scrolling; ${Math.round(memScrolled.rssKiB / 1024)} MiB RSS`);
    const throttled = box.throttled();
    return {
      quality,
      round,
      visibleMs,
      processes,
      memSettled,
      memScrolled,
      cgroup: box.memory(),
      throttled,
      idle: window(a, b, ctx.quotaUs),
      keysWindow: window(c, d, ctx.quotaUs),
      scrollWindow: window(e, f, ctx.quotaUs),
      keys,
      scroll,
      scrolled,
    };
  } finally {
    if (id) {
      const r = await ctx.api.request('POST', `/v1/sessions/${id}/stop`, { token: ctx.token });
      if (r.status !== 200) progress(`stop ${id}: ${r.status}`);
    }
    try {
      await cli.exited(60_000);
    } catch {
      cli.kill();
      await sleep(2000);
    }
    for (const pid of box.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sleep(500);
    box.remove();
  }
}

const base = testSessions({ instanceId: 'hs-bench-pi-zero', network: { name: 'hs-bench-pi-zero', bridge: 'hsb-pizero0' } });
let display: Display | undefined;
let page: { url: string; close(): Promise<void> } | undefined;
// Stopped by hand (runs can be long under qemu): still take down the Xvfb and the sessions.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    display?.close();
    void cleanupSessions(base).finally(() => process.exit(130));
  });
}
try {
  const started = new Date();
  const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const loadAtStart = load();
  progress(`calibrating the simulated core (openssl speed in the armel rootfs, host CPU ${CPU})`);
  const calibration = await calibrate();
  progress(`calibration: ${JSON.stringify(calibration)}`);
  const net = await ensureSessionNetwork(docker, { ...base.network, allow: [] }, silentLogger());
  if (!net.gateway) throw new Error('the sessions network has no gateway address');
  page = await servePage(net.gateway);
  const cfg = { ...base, network: { ...base.network, allow: [`${net.gateway}/32`] } };
  display = await startXvfb(1280, 800);
  const api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions: { ...cfg, pool: { size: 0 } }, log: { level: 'warn' } } });
  const home = mkdtempSync(join(tmpdir(), 'hs-bench-pi-zero-'));
  const runs: Run[] = [];
  try {
    await api.createUser(USER.username, USER.password, { quota: { max_sessions: 10, memory_mb: 2048 } });
    const fingerprint = new X509Certificate(readFileSync(join(api.dataDir, 'certs', 'api.crt'))).fingerprint256;
    const conf = await runCli(['configure', '--api-url', `https://${PUBLIC_HOST}:${api.port}`, '--address', '127.0.0.1', '--ca-fingerprint', fingerprint], { home });
    if (conf.code !== 0) throw new Error(`hackstream configure: ${conf.stderr}`);
    const login = await runCli(['login'], { home, stdin: `${USER.username}\n${USER.password}\n` });
    if (login.code !== 0) throw new Error(`hackstream login: ${login.stderr}`);
    const token = (await api.login(USER.username, USER.password)).access_token;
    const ctx: Ctx = { api, token, home, display, url: page.url, quotaUs: calibration.quotaUs };
    for (let round = 1; round <= ROUNDS; round++) {
      for (const q of [...QUALITIES, ...VARIANTS.keys()]) {
        progress(`round ${round}: attaching at ${q} (the armel client starts slowly under qemu)`);
        try {
          runs.push(await attached(ctx, q, round));
          // Each run's figures as they come, so a run stopped half-way still leaves them.
          progress(`result ${JSON.stringify(runs.at(-1))}`);
        } catch (err) {
          progress(`${q} round ${round} failed: ${(err as Error).message}`);
        }
      }
    }
  } finally {
    await api.close();
    rmSync(home, { recursive: true, force: true });
  }
  const { stdout: qemu } = await run('qemu-arm-static', ['--version']);
  const result = {
    started: started.toISOString(),
    machine: { cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`, memoryGiB: Math.round(totalmem() / 2 ** 30), loadAtStart, loadAtEnd: load(), qemu: qemu.split('\n')[0] ?? '' },
    calibration,
    runs,
  };
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : report(result));
} finally {
  display?.close();
  await page?.close();
  await cleanupSessions(base);
}
