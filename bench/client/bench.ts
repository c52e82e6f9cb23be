/*
 * npm run bench:client — what a user of the `hackstream` CLI sees and pays, on this host:
 *   launch → visible: `hackstream launch browser --url <page>` until the page's colour block is on
 *     the client's X display (an Xvfb), cold (no pool) and from a pool of one, for each client
 *     interleaved: "before" (no warm start, the old sound options: xpra-before.sh), the
 *     checkout's wrapper (tsx CLI) and, with --packaged-wrapper, the packaged one (bundled CLI);
 *   attached (the page up, then idle, then scrolled with the mouse wheel), at each --quality:
 *     the wrapper's RSS and CPU (bin/hackstream, a shell: while attached the Node CLI has handed
 *     xpra's command line over and exited, and the bench checks that no node process is left under
 *     the shell), the Node CLI's peak RSS during the launch, the xpra client's RSS and CPU, and the
 *     bytes per second of the xpra client's TCP connection to the gateway (kernel tcp_info, client
 *     side), down and up.
 * The server runs in this process (gateway + API on Postgres + Redis, the real Docker engine and
 * image); the CLI is a child process with its own HOME, and it runs the real xpra client.
 * Options: --runs N (10) launches per path (0: none), --rounds N (2) attached sessions per quality,
 * --qualities a,b (low,auto,high), --seconds S (20) per idle and scroll window,
 * --settle S (5) after the page shows, --packaged-wrapper FILE (bin/hackstream as the .deb ships
 * it: run.sh makes it with scripts/package-deb.sh's sed, its CLI the esbuild bundle `.mjs` or
 * tsc's output; measured at low next to the checkout's tsx one), --shots DIR (screenshots of
 * each session right after scrolling and 2 s later, to judge the text), --json. Progress on stderr.
 * HACKSTREAM_XPRA (an executable that ends in `exec xpra "$@"`, e.g. one that rewrites the
 * options) passes through to the CLI, to try xpra options without editing the presets.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { silentLogger } from '../../lib/log.js';
import { ensureSessionNetwork } from '../../agent/network.js';
import { startApi, type TestApi } from '../../test/helpers/api.js';
import { runCli, spawnCli, type RunningCli } from '../../test/helpers/cli.js';
import { screenshot, startXvfb, xdotool, type Box, type Display } from '../../test/helpers/display.js';
import { PUBLIC_HOST } from '../../test/helpers/gateway.js';
import { cleanupSessions, docker, testSessions } from '../../test/helpers/sessions.js';
import { MARK, servePages, type PageServer } from './page.js';
import { childrenOf, commandOf, cpuSeconds, memoryOf, tcpBytesOf, treeOf } from './proc.js';
import { report, type Launches } from './report.js';
import { summary, type Attached, type Window } from './stats.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '20' },
    settle: { type: 'string', default: '5' },
    qualities: { type: 'string', default: 'low,auto,high' },
    'packaged-wrapper': { type: 'string' },
    shots: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const SETTLE_MS = Number(values.settle) * 1000;
const QUALITIES = values.qualities.split(',').filter(Boolean);
/** Lossy encodings (JPEG at low) shift colours; the block is large, so a loose match is safe. */
const FIND = { tolerance: 40, minCount: 50_000 } as const;
const USER = { username: 'bench', password: 'Bench-Client-Password-1' };

const progress = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ctx {
  api: TestApi;
  token: string;
  home: string;
  display: Display;
  pages: PageServer;
}

/** A running `hackstream launch`: what the bench needs of spawnCli's handle. */
type Launched = Pick<RunningCli, 'pid' | 'stderr' | 'exited' | 'kill'>;

type Launcher = (ctx: Ctx, args: string[]) => Launched;

/** bin/hackstream from the checkout (its CLI runs with tsx), as the helpers' spawnCli runs it. */
const checkoutCli: Launcher = (ctx, args) => spawnCli(args, { home: ctx.home, env: { DISPLAY: ctx.display.name } });

/**
 * The client as it was before the warm start (the "before" of launch → visible): the same
 * wrapper with HACKSTREAM_XPRA at xpra-before.sh, which turns the warm start off and puts back
 * the old sound options.
 */
const beforeCli: Launcher = (ctx, args) =>
  spawnCli(args, { home: ctx.home, env: { DISPLAY: ctx.display.name, HACKSTREAM_XPRA: fileURLToPath(new URL('./xpra-before.sh', import.meta.url)) } });

/** The packaged wrapper (a shell script; run.sh makes it), same HOME, cwd and display. */
const packagedCli = (file: string): Launcher => (ctx, args) => {
  const child = spawn(file, args, {
    cwd: ctx.home,
    env: { ...process.env, HOME: ctx.home, XDG_CONFIG_HOME: `${ctx.home}/.config`, DISPLAY: ctx.display.name },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    pid: child.pid ?? -1,
    stderr: () => err,
    exited: (ms) => Promise.race([exit, sleep(ms).then(() => Promise.reject(new Error('the packaged wrapper did not exit')))]),
    kill: () => void (child.exitCode === null && child.kill('SIGTERM')),
  };
};

/** Node processes in the tree under pid (the CLI, during a launch or a __resume). */
const nodesUnder = (pid: number) => treeOf(pid).filter((p) => /^(\S*\/)?node(js)?$/.test(commandOf(p).split(' ')[0] ?? ''));

const shots: number[] = [];

/**
 * Screenshots back to back until the colour block shows; the time is when that screenshot returned.
 * `onPoll` runs between screenshots (the CLI's progress lines are timed at the same resolution).
 */
async function waitVisible(ctx: Ctx, cli: Launched, ms: number, onPoll: () => Promise<void>): Promise<Box> {
  const end = performance.now() + ms;
  for (;;) {
    const t = performance.now();
    const shot = await screenshot(ctx.display);
    shots.push(performance.now() - t);
    await onPoll();
    const box = shot.find(MARK, FIND);
    if (box) return box;
    if (/hackstream: /.test(cli.stderr())) throw new Error(`the CLI failed:\n${cli.stderr().slice(-2000)}`);
    if (performance.now() > end) throw new Error(`the page did not show within ${ms} ms; CLI stderr:\n${cli.stderr().slice(-2000)}`);
    await sleep(20);
  }
}

async function launch(ctx: Ctx, launcher: Launcher, page: string, quality: string) {
  const clear = await screenshot(ctx.display);
  if (clear.find(MARK, FIND)) throw new Error('the colour block is on the display before the launch');
  const t0 = performance.now();
  const cli = launcher(ctx, ['launch', 'browser', '--url', ctx.pages.url(page), '--quality', quality]);
  let descriptorMs = NaN;
  let windowMs = NaN;
  let nodePeakKiB = 0;
  try {
    const box = await waitVisible(ctx, cli, 90_000, async () => {
      // The Node CLI's peak RSS (VmHWM) while it is alive: it exits when it hands xpra over.
      for (const p of nodesUnder(cli.pid)) nodePeakKiB = Math.max(nodePeakKiB, memoryOf(p)?.hwm ?? 0);
      if (Number.isNaN(descriptorMs) && /; attaching/.test(cli.stderr())) descriptorMs = performance.now() - t0;
      // No window manager on the Xvfb: any mapped, named window is xpra's copy of Firefox's.
      if (!Number.isNaN(descriptorMs) && Number.isNaN(windowMs) && (await xdotool(ctx.display, ['search', '--onlyvisible', '--name', '.']))) windowMs = performance.now() - t0;
    });
    const ms = performance.now() - t0;
    const id = /Session ([0-9a-f-]{36}) is/.exec(cli.stderr())?.[1];
    if (!id) throw new Error(`no session id in the CLI's output:\n${cli.stderr()}`);
    return { cli, id, box, ms, descriptorMs, windowMs: Number.isNaN(windowMs) ? ms : windowMs, nodePeakKiB };
  } catch (err) {
    cli.kill();
    throw err;
  }
}

/** Stops the session through the API and waits for the CLI (and so xpra) to exit. */
async function stop(ctx: Ctx, id: string, cli: Launched): Promise<void> {
  const r = await ctx.api.request('POST', `/v1/sessions/${id}/stop`, { token: ctx.token });
  if (r.status !== 200) progress(`stop ${id}: ${r.status} ${r.text.slice(0, 200)}`);
  try {
    await cli.exited(30_000);
  } catch {
    progress(`the CLI of ${id} did not exit within 30 s after the stop; killed`);
    cli.kill();
    await sleep(1000);
  }
}

/** The clients launch → visible compares, one launch of each per run, interleaved (same host conditions). */
const LAUNCH_CLIENTS: Record<string, Launcher> = {
  before: beforeCli,
  'checkout (tsx)': checkoutCli,
  ...(values['packaged-wrapper'] ? { packaged: packagedCli(values['packaged-wrapper']) } : {}),
};

async function launchToVisible(ctx: Ctx, label: string, before: () => Promise<void>): Promise<Record<string, Launches>> {
  const times: Record<string, { visible: number[]; descriptor: number[]; window: number[] }> = {};
  for (let i = 0; i <= RUNS; i++) {
    for (const [name, launcher] of Object.entries(LAUNCH_CLIENTS)) {
      await before();
      const { cli, id, ms, descriptorMs, windowMs } = await launch(ctx, launcher, '/visible', 'low');
      await stop(ctx, id, cli);
      const line = `${Math.round(ms)} ms from launch to the page on the display (the CLI said "attaching" at ${Math.round(descriptorMs)} ms, xpra's window at ${Math.round(windowMs)} ms)`;
      if (i === 0) progress(`${label}, ${name}, warm-up: ${line}, not counted`);
      else {
        const t = (times[name] ??= { visible: [], descriptor: [], window: [] });
        t.visible.push(ms);
        t.descriptor.push(descriptorMs);
        t.window.push(windowMs);
        progress(`${label}, ${name} ${i}/${RUNS}: ${line}`);
      }
    }
  }
  return Object.fromEntries(Object.entries(times).map(([name, t]) => [name, { visible: summary(t.visible), attaching: summary(t.descriptor), window: summary(t.window) }]));
}

/** RSS of a Node process that does nothing (the floor under any Node wrapper), KiB. */
async function bareNodeRss(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  await sleep(1500);
  const rss = child.pid === undefined ? NaN : (memoryOf(child.pid)?.rss ?? NaN);
  child.kill('SIGTERM');
  return rss;
}

/** Readings of the wrapper and xpra at one instant; `nodes`: node processes under the wrapper. */
async function sample(wrapper: number, xpra: number, port: number) {
  const bytes = await tcpBytesOf(xpra, port);
  if (bytes.sockets === 0) throw new Error('the xpra client has no connection to the gateway');
  const nodes = nodesUnder(wrapper).map((p) => commandOf(p).slice(0, 120));
  return { t: performance.now(), bytes, nodes, wrapper: cpuSeconds(wrapper), xpra: treeOf(xpra).reduce((a, p) => a + cpuSeconds(p), 0) };
}

function windowOf(a: Awaited<ReturnType<typeof sample>>, b: typeof a): Window {
  const s = (b.t - a.t) / 1000;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    seconds: r1(s),
    downBps: Math.round((b.bytes.down - a.bytes.down) / s),
    upBps: Math.round((b.bytes.up - a.bytes.up) / s),
    wrapperCpu: r1(((b.wrapper - a.wrapper) / s) * 100),
    xpraCpu: r1(((b.xpra - a.xpra) / s) * 100),
  };
}

/** One session on the long page at `quality`: idle, then scrolled at 10 wheel notches a second. */
async function attached(ctx: Ctx, quality: string, launcher: Launcher, cli: Attached['cli']): Promise<Omit<Attached, 'round'>> {
  const l = await launch(ctx, launcher, '/long', quality);
  try {
    await sleep(SETTLE_MS);
    // The wrapper is the shell the bench spawned; while attached its only child should be xpra.
    const wrapper = l.cli.pid;
    const children = childrenOf(wrapper);
    const xpra = childrenOf(wrapper, /xpra/)[0];
    if (xpra === undefined) throw new Error(`expected an xpra child of the wrapper ${wrapper}, found ${children.map(commandOf).join('; ') || 'none'}`);
    const a = await sample(wrapper, xpra, ctx.api.port);
    await sleep(SECONDS * 1000);
    const b = await sample(wrapper, xpra, ctx.api.port);
    const mem = memoryOf(wrapper);
    const xpraTree = treeOf(xpra);
    const xpraMem = xpraTree.map(memoryOf);
    const xpraCommands = xpraTree.map((pid) => commandOf(pid).slice(0, 160));
    // The wheel over the page (the block's centre is inside Firefox's content area).
    await xdotool(ctx.display, ['mousemove', String(l.box.x + (l.box.width >> 1)), String(l.box.y + (l.box.height >> 1))]);
    const c = await sample(wrapper, xpra, ctx.api.port);
    await xdotool(ctx.display, ['click', '--repeat', String(SECONDS * 10), '--delay', '100', '5']);
    const d = await sample(wrapper, xpra, ctx.api.port);
    const after = await screenshot(ctx.display);
    const scrolled = !after.find(MARK, FIND);
    if (values.shots) {
      const name = join(values.shots, `${quality}-${cli}-${Date.now()}`);
      after.save(`${name}-scrolling.png`);
      await sleep(2000); // xpra's auto-refresh repaints still content at a higher quality
      (await screenshot(ctx.display)).save(`${name}-settled.png`);
    }
    const sum = (k: 'rss' | 'hwm') => xpraMem.reduce((acc, m) => acc + (m?.[k] ?? 0), 0);
    const nodes = [...new Set([a, b, c, d].flatMap((s) => s.nodes))];
    if (nodes.length) progress(`node process(es) under the wrapper while attached: ${nodes.join('; ')}`);
    return {
      quality,
      cli,
      wrapperCommand: commandOf(wrapper).slice(0, 120),
      wrapperChildren: children.map((p) => commandOf(p).split(' ')[0] ?? ''),
      nodeWhileAttached: nodes,
      nodeLaunchPeakKiB: l.nodePeakKiB,
      wrapperRssKiB: mem?.rss ?? NaN,
      wrapperHwmKiB: mem?.hwm ?? NaN,
      xpraRssKiB: sum('rss'),
      xpraHwmKiB: sum('hwm'),
      xpraProcesses: xpraCommands,
      idle: windowOf(a, b),
      scroll: windowOf(c, d),
      scrolled,
    };
  } finally {
    await stop(ctx, l.id, l.cli);
  }
}

/** A HackStream with a pool of `poolSize`, a bench user, and a configured, logged-in CLI home. */
async function withServer<T>(cfg: ReturnType<typeof testSessions>, poolSize: number, display: Display, pages: PageServer, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  const api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions: { ...cfg, pool: { size: poolSize } }, log: { level: 'warn' } } });
  const home = mkdtempSync(join(tmpdir(), 'hs-bench-client-'));
  try {
    await api.createUser(USER.username, USER.password, { quota: { max_sessions: 10, memory_mb: 2048 } });
    const fingerprint = new X509Certificate(readFileSync(join(api.dataDir, 'certs', 'api.crt'))).fingerprint256;
    const conf = await runCli(['configure', '--api-url', `https://${PUBLIC_HOST}:${api.port}`, '--address', '127.0.0.1', '--ca-fingerprint', fingerprint], { home });
    if (conf.code !== 0) throw new Error(`hackstream configure: ${conf.stderr}`);
    const login = await runCli(['login'], { home, stdin: `${USER.username}\n${USER.password}\n` });
    if (login.code !== 0) throw new Error(`hackstream login: ${login.stderr}`);
    const token = (await api.login(USER.username, USER.password)).access_token;
    return await fn({ api, token, home, display, pages });
  } finally {
    await api.close();
    rmSync(home, { recursive: true, force: true });
  }
}

const base = testSessions({ instanceId: 'hs-bench-client', network: { name: 'hs-bench-client', bridge: 'hsb-client0' } });
let display: Display | undefined;
let pages: PageServer | undefined;
try {
  const started = new Date();
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const others = (await docker.listContainers()).length;
  // The sessions' firewall blocks the host; the pages are served on the network's gateway address,
  // which the allow-list opens (for this bench's network only).
  const net = await ensureSessionNetwork(docker, { ...base.network, allow: [] }, silentLogger());
  if (!net.gateway) throw new Error('the sessions network has no gateway address');
  pages = await servePages(net.gateway);
  const cfg = { ...base, network: { ...base.network, allow: [`${net.gateway}/32`] } };
  display = await startXvfb(1280, 800);
  const d = display;
  const p = pages;

  const cold = await withServer(cfg, 0, d, p, async (ctx) => {
    const launches = RUNS > 0 ? await launchToVisible(ctx, 'cold', async () => {}) : undefined;
    const presets: Attached[] = [];
    // Scrolling traffic swings between sessions (xpra adapts to the load it sees): rounds interleave the presets.
    for (let round = 1; round <= ROUNDS; round++) {
      for (const q of QUALITIES) {
        presets.push({ ...(await attached(ctx, q, checkoutCli, 'tsx')), round });
        progress(`attached at ${q}, round ${round}: ${JSON.stringify(presets.at(-1))}`);
      }
    }
    const packaged = values['packaged-wrapper'];
    if (packaged) {
      const kind = /hackstream\.mjs/.test(readFileSync(packaged, 'utf8')) ? 'bundle' : 'tsc';
      presets.push({ ...(await attached(ctx, 'low', packagedCli(packaged), kind)), round: 1 });
      progress(`attached at low, packaged wrapper (${kind} CLI): ${JSON.stringify(presets.at(-1))}`);
    }
    return { launches, presets };
  });
  const pool = RUNS <= 0 ? undefined : await withServer(cfg, 1, d, p, (ctx) =>
    launchToVisible(ctx, 'pool', async () => {
      const end = Date.now() + 120_000;
      while (ctx.api.gw.app.sessions.poolSize() < 1 && Date.now() < end) await sleep(100);
    }),
  );
  const result = {
    started: started.toISOString(),
    machine: { cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, loadAtStart: load, otherContainersAtStart: others },
    runs: RUNS,
    rounds: ROUNDS,
    seconds: SECONDS,
    bareNodeRssKiB: await bareNodeRss(),
    screenshotMs: summary(shots),
    launch: cold.launches && pool ? { cold: cold.launches, pool } : undefined,
    attached: cold.presets,
  };
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : report(result));
} finally {
  display?.close();
  await pages?.close();
  await cleanupSessions(base);
}
