import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Backoff } from '../../server/supervisor-backoff.js';
import { lookupUser } from '../../lib/system-user.js';
import { waitForLine, type HackstreamProcess } from '../helpers/server-process.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * The supervisor (server/supervisor.ts) in its own process, with fixture children
 * (test/fixtures/supervisor/child.ts) instead of agent, control and edge.
 */

const RUN = fileURLToPath(new URL('../fixtures/supervisor/run.ts', import.meta.url));
const MAIN = fileURLToPath(new URL('../../server/supervisor-main.ts', import.meta.url));
const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const scratch = scratchDirs('hs-supervisor-');

interface FixtureChild {
  name: string;
  kind: 'fork' | 'cluster' | 'service';
  mode: 'ok' | 'crash' | 'ignore-term' | 'never-ready' | 'loading' | 'tcp';
  workers?: number;
  user?: string;
  entry?: string;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
}

interface Running extends HackstreamProcess {
  /** The lines fixture children wrote to their shared file ("start x", "stop x"). */
  notes(): string[];
  /** The JSON log lines whose msg is `msg`. */
  logs(msg: string): Array<Record<string, unknown>>;
}

/** `group`: the process leads a process group of its own, as a shell's foreground job does. */
function spawnNode(args: string[], env: Record<string, string>, group = false): HackstreamProcess {
  const child = spawn(process.execPath, ['--import', TSX, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: group });
  const lines: string[] = [];
  let err = '';
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let code: number | null | undefined;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve((code = c))));
  return { child, lines, stderr: () => err, exit, exitCode: () => code };
}

function supervise(children: FixtureChild[], group = false): Running {
  // The edge fixture runs as hackstream-edge: its note file and the way to it must be open to it.
  const dir = scratch();
  chmodSync(dirname(dir), 0o711);
  chmodSync(dir, 0o755);
  const log = join(dir, 'notes');
  writeFileSync(log, '');
  chmodSync(log, 0o666);
  const p = spawnNode([RUN], { FIXTURE_SPEC: JSON.stringify({ log, children }) }, group);
  const parsed = (): Array<Record<string, unknown>> =>
    p.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  return {
    ...p,
    notes: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
    logs: (msg) => parsed().filter((l) => l.msg === msg),
  };
}

/** Waits until `check` returns a value other than undefined; fails after `ms` or when the supervisor exited. */
async function until<T>(p: HackstreamProcess, what: string, check: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (p.exitCode() !== undefined || Date.now() > end) {
      throw new Error(`${what}: not within ${ms} ms (exit ${p.exitCode()}); stderr:\n${p.stderr()}\nstdout:\n${p.lines.slice(-30).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid of the worker that accepted a connection to `port`. */
function whoAnswers(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve(Number(data.trim())));
    socket.on('error', reject);
  });
}

/** The uid a process runs as (real uid, from the kernel). */
function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

/** The socket inode listening on 127.0.0.1:`port` (from /proc/net/tcp). */
function listeningInode(port: number): string | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const row of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = row.trim().split(/\s+/);
    if (f[1] === `0100007F:${hexPort}` && f[3] === '0A') return f[9];
  }
  return undefined;
}

function holdsSocket(pid: number, inode: string): boolean {
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
    } catch {
      return false;
    }
  });
}

describe('supervisor backoff', () => {
  const cases: Array<{ description: string; uptimes: number[]; delays: number[] }> = [
    { description: 'doubles from 250 ms while the child keeps crashing at once', uptimes: [0, 10, 10, 10], delays: [250, 500, 1000, 2000] },
    { description: 'stops doubling at 30 s', uptimes: Array<number>(10).fill(0), delays: [250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000] },
    { description: 'starts again at 250 ms after a child stayed up 60 s', uptimes: [0, 0, 60_000, 0], delays: [250, 500, 250, 500] },
  ];
  for (const c of cases) {
    it(c.description, () => {
      const b = new Backoff();
      assert.deepEqual(
        c.uptimes.map((u) => b.delay(u)),
        c.delays,
      );
    });
  }
});

describe('supervisor process', () => {
  it('restarts a child that crashes, with doubling delays, every exit logged; the others keep running', async () => {
    const p = supervise([
      { name: 'steady', kind: 'fork', mode: 'ok' },
      { name: 'crasher', kind: 'fork', mode: 'crash' },
    ]);
    try {
      const exits = await until(p, 'three crashes', () => {
        const e = p.logs('child exited').filter((l) => l.child === 'crasher');
        return e.length >= 3 ? e.slice(0, 3) : undefined;
      });
      assert.deepEqual(
        exits.map((e) => e.restartInMs),
        [250, 500, 1000],
      );
      assert.ok(exits.every((e) => e.code === 3 && e.signal === null && typeof e.pid === 'number'));
      assert.equal(new Set(exits.map((e) => e.pid)).size, 3, 'a new process each time');
      assert.deepEqual(
        p.logs('child restarting').slice(0, 2).map((l) => [l.child, l.delayMs]),
        [
          ['crasher', 250],
          ['crasher', 500],
        ],
      );
      assert.equal(p.logs('child started').filter((l) => l.child === 'steady').length, 1, 'the steady child was never restarted');
      assert.equal(p.logs('child exited').filter((l) => l.child === 'steady').length, 0);
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('starts children in table order, each once the one before is ready, and drains them in reverse on SIGTERM', async () => {
    const p = supervise([
      { name: 'agent', kind: 'fork', mode: 'ok' },
      { name: 'control', kind: 'fork', mode: 'ok' },
      { name: 'edge', kind: 'cluster', mode: 'tcp', workers: 2, user: 'hackstream-edge' },
    ]);
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 30_000);
      assert.deepEqual(p.notes(), ['start agent', 'start control', 'start edge', 'start edge']);
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
      assert.deepEqual(p.notes().slice(4), ['stop edge', 'stop edge', 'stop control', 'stop agent']);
      const stopped = p.logs('child stopped');
      assert.deepEqual(
        stopped.map((l) => l.child),
        ['edge', 'edge', 'control', 'agent'],
      );
      assert.ok(stopped.every((l) => l.code === 0));
      assert.ok(p.logs('shutting down').length === 1);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('drains in order on a Ctrl-C sent to the whole process group (agent and control do not get it)', async () => {
    const p = supervise(
      [
        { name: 'agent', kind: 'fork', mode: 'ok' },
        { name: 'control', kind: 'fork', mode: 'ok' },
        { name: 'edge', kind: 'cluster', mode: 'tcp', workers: 2, user: 'hackstream-edge' },
      ],
      true,
    );
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 30_000);
      // As a terminal does: SIGINT to every process of the foreground group. The fixture's
      // agent and control die of a SIGINT (no handler), so a stray one would show.
      process.kill(-p.child.pid!, 'SIGINT');
      assert.equal(await p.exit, 0, p.stderr());
      assert.deepEqual(p.notes().slice(4), ['stop edge', 'stop edge', 'stop control', 'stop agent']);
      assert.deepEqual(
        p.logs('child stopped').map((l) => [l.child, l.code]),
        [
          ['edge', 0],
          ['edge', 0],
          ['control', 0],
          ['agent', 0],
        ],
      );
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('runs the edge as cluster workers under hackstream-edge on a port the supervisor binds, and replaces a killed worker while the other keeps accepting', async () => {
    const p = supervise([{ name: 'edge', kind: 'cluster', mode: 'tcp', workers: 2, user: 'hackstream-edge' }]);
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 30_000);
      const edgeUid = lookupUser('hackstream-edge')?.uid;
      assert.ok(edgeUid !== undefined && edgeUid !== 0);
      const ready = p.logs('child ready');
      const workers = ready.map((l) => l.pid as number);
      assert.equal(workers.length, 2);
      for (const pid of workers) assert.equal(uidOf(pid), edgeUid, `worker ${pid} runs as hackstream-edge`);
      const ports = new Set(p.logs('child status').map((l) => (l.status as { port: number }).port));
      assert.equal(ports.size, 1, 'both workers listen on the one port');
      const [port] = [...ports] as [number];
      const inode = listeningInode(port);
      assert.ok(inode, 'a listening socket on the port');
      assert.ok(holdsSocket(p.child.pid!, inode), 'the supervisor (root) holds the listening socket it bound');
      assert.ok(workers.includes(await whoAnswers(port)));

      const [victim, survivor] = workers as [number, number];
      process.kill(victim, 'SIGKILL');
      const exited = await until(p, 'the killed worker logged', () => p.logs('child exited').find((l) => l.pid === victim));
      assert.equal(exited.signal, 'SIGKILL');
      assert.equal(exited.restartInMs, 250);
      // The survivor answers while the replacement is not there yet or alongside it.
      let answered = false;
      for (let i = 0; i < 200 && !answered; i++) answered = (await whoAnswers(port)) === survivor;
      assert.ok(answered, 'the surviving worker keeps accepting');
      const replacement = await until(p, 'a replacement worker', () => p.logs('child ready').find((l) => l.worker === exited.worker && l.pid !== victim));
      const fresh = replacement.pid as number;
      assert.equal(uidOf(fresh), edgeUid);
      let served = false;
      for (let i = 0; i < 200 && !served; i++) served = (await whoAnswers(port)) === fresh;
      assert.ok(served, 'the replacement accepts on the same port');
      assert.ok(alive(survivor), 'the survivor was left alone');
      assert.equal(p.logs('child exited').length, 1, 'only the killed worker exited');
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('starts a service (the embedded store) first, passes its socket dir on, restarts it when it dies, and stops it last', async () => {
    const p = supervise([
      { name: 'store', kind: 'service', mode: 'ok' },
      { name: 'agent', kind: 'fork', mode: 'ok' },
      { name: 'edge', kind: 'cluster', mode: 'tcp', workers: 1, user: 'hackstream-edge' },
    ]);
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 30_000);
      assert.deepEqual(p.notes(), ['start store', 'start agent', 'start edge']);
      const storePid = p.logs('child ready').find((l) => l.child === 'store')?.pid as number;
      const seen = (child: string) => p.logs('child status').find((l) => l.child === child && (l.status as { socketDir?: string }).socketDir)?.status;
      assert.deepEqual(seen('agent'), { socketDir: `/fixture/store/${storePid}` });
      assert.deepEqual(seen('edge'), { socketDir: `/fixture/store/${storePid}` });
      process.kill(storePid, 'SIGKILL');
      const exited = await until(p, 'the store exit logged', () => p.logs('child exited').find((l) => l.child === 'store'));
      assert.equal(exited.restartInMs, 250);
      await until(p, 'the store restarted', () => p.logs('child ready').find((l) => l.child === 'store' && l.pid !== storePid));
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
      assert.deepEqual(p.notes().slice(3), ['start store', 'stop edge', 'stop agent', 'stop store']);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('SIGKILLs a child that ignores SIGTERM once its deadline passed, and exits 1 for the unclean stop', async () => {
    const p = supervise([
      { name: 'stubborn', kind: 'fork', mode: 'ignore-term', stopTimeoutMs: 1000 },
      { name: 'polite', kind: 'fork', mode: 'ok' },
    ]);
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 30_000);
      const pid = p.logs('child ready').find((l) => l.child === 'stubborn')?.pid as number;
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 1);
      assert.deepEqual(p.notes().slice(2), ['stop polite', 'stop stubborn']);
      const late = p.logs('child did not stop in time; killing it');
      assert.deepEqual(
        late.map((l) => [l.child, l.pid, l.stopTimeoutMs]),
        [['stubborn', pid, 1000]],
      );
      const stopped = p.logs('child stopped').find((l) => l.child === 'stubborn');
      assert.equal(stopped?.signal, 'SIGKILL');
      assert.ok((stopped?.ms as number) >= 1000);
      assert.equal(alive(pid), false);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('stops cleanly (exit 0) on a SIGTERM while a child is still loading, before its own handler exists', async () => {
    const p = supervise([
      { name: 'first', kind: 'fork', mode: 'ok' },
      { name: 'loading', kind: 'fork', mode: 'loading' },
    ]);
    try {
      await until(p, 'the loading child started', () => (p.notes().includes('start loading') ? true : undefined));
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
      const stopped = p.logs('child stopped').find((l) => l.child === 'loading');
      assert.equal(stopped?.signal, 'SIGTERM');
      assert.deepEqual(p.logs('all processes stopped').map((l) => l.clean), [true]);
      assert.deepEqual(p.notes(), ['start first', 'start loading', 'stop first']);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('fails the start with a clear message when a child never gets ready, stopping what already runs', async () => {
    const p = supervise([
      { name: 'first', kind: 'fork', mode: 'ok' },
      { name: 'sleepy', kind: 'fork', mode: 'never-ready', readyTimeoutMs: 1500 },
      { name: 'third', kind: 'fork', mode: 'ok' },
    ]);
    try {
      assert.equal(await p.exit, 1);
      assert.match(p.stderr(), /^hackstream: start-up failed: sleepy did not get ready within 1\.5 s \(see its log above\)\n$/);
      assert.deepEqual(p.notes(), ['start first', 'stop first']);
      assert.ok(!p.logs('child started').some((l) => l.child === 'third'), 'nothing after it started');
      const sleepy = p.logs('child started').find((l) => l.child === 'sleepy')?.pid as number;
      assert.equal(alive(sleepy), false);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});

describe('supervisor process, failing starts', () => {
  it('fails the start when a child cannot even load its entry file, naming it and its exit code', async () => {
    const p = supervise([
      { name: 'agent', kind: 'fork', mode: 'ok' },
      { name: 'control', kind: 'fork', mode: 'ok', entry: join(dirname(RUN), 'no-such-entry.ts') },
    ]);
    try {
      assert.equal(await p.exit, 1);
      assert.match(p.stderr(), /Cannot find module/, "the child's own error is on stderr");
      assert.match(p.stderr(), /\nhackstream: start-up failed: control exited with code 1 before it was ready \(see its log above\)\n$/);
      assert.deepEqual(p.notes(), ['start agent', 'stop agent']);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('fails the start naming the service whose start threw, and starts nothing after it', async () => {
    const p = supervise([
      { name: 'store', kind: 'service', mode: 'crash' },
      { name: 'agent', kind: 'fork', mode: 'ok' },
    ]);
    try {
      assert.equal(await p.exit, 1);
      assert.match(p.stderr(), /^hackstream: start-up failed: store: no PostgreSQL server found \(fixture\)\n$/);
      assert.deepEqual(p.notes(), []);
      assert.equal(p.logs('child started').length, 0);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});

describe('supervisor-main', () => {
  it('prints what runs, as whom, with --help', async () => {
    const p = spawnNode([MAIN, '--help'], {});
    assert.equal(await p.exit, 0);
    const out = p.lines.join('\n');
    assert.match(out, /HACKSTREAM_LISTEN \(default 0\.0\.0\.0:443\)/);
    assert.match(out, /agent +Docker engine and firewall, the only privileged process \(root\)/);
    assert.match(out, /HACKSTREAM_EDGE_WORKERS/);
  });

  it('refuses a bad config or worker count with exit 78, before starting anything', async () => {
    const bad = spawnNode([MAIN], { HACKSTREAM_LISTEN: 'localhost' });
    assert.equal(await bad.exit, 78);
    assert.match(bad.stderr(), /listen \(from HACKSTREAM_LISTEN\): must be "host:port"/);
    const workers = spawnNode([MAIN], { HACKSTREAM_EDGE_WORKERS: 'zero' });
    assert.equal(await workers.exit, 78);
    assert.match(workers.stderr(), /HACKSTREAM_EDGE_WORKERS: /);
  });
});
