import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { lookupUser } from '../../lib/system-user.js';
import { waitForLine, type HackstreamProcess } from '../helpers/server-process.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * server/supervisor-main.ts's main() in its own process — config, users, run dir, the
 * children's environment, signals — with fixture children that report what they were given
 * (test/fixtures/supervisor/main.ts), as root and as an ordinary user.
 */

const MAIN = fileURLToPath(new URL('../fixtures/supervisor/main.ts', import.meta.url));
const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const scratch = scratchDirs('hs-supervisor-main-');
/** What a child may see of the environment (the contract, plus what Node itself adds for IPC and cluster). */
const ALLOWED = /^(HACKSTREAM_[A-Z0-9_]+|FIXTURE_[A-Z]+|PATH|HOME|NODE_ENV|NODE_UNIQUE_ID|NODE_CHANNEL_FD|NODE_CHANNEL_SERIALIZATION_MODE)$/;

interface Report {
  child: string;
  pid: number;
  uid: number;
  env: string[];
  runDir: string;
  dataDir: string;
  controlUid: string;
  edgeUid: string;
  pgSocketDir?: string;
  config?: string;
}

function start(env: Record<string, string>, as?: { uid: number; gid: number }): HackstreamProcess {
  const node = [process.execPath, '--import', TSX, MAIN];
  // setpriv execs (no process in between), so the signal the test sends reaches the supervisor.
  const [cmd, ...args] = as ? ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', ...node] : node;
  const child = spawn(cmd!, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let code: number | null | undefined;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve((code = c))));
  return { child, lines, stderr: () => err, exit, exitCode: () => code };
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

function logs(p: HackstreamProcess, msg: string): Array<Record<string, unknown>> {
  return p.lines.flatMap((l) => {
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      return o.msg === msg ? [o] : [];
    } catch {
      return [];
    }
  });
}

function reports(p: HackstreamProcess): Report[] {
  return logs(p, 'child status')
    .filter((l) => (l.status as { uid?: number }).uid !== undefined)
    .map((l) => ({ ...(l.status as Omit<Report, 'child' | 'pid'>), child: l.child as string, pid: l.pid as number }));
}

describe('supervisor main()', { skip: process.getuid?.() !== 0 && 'needs root (creates users, runs children as them)' }, () => {
  it('as root: control runs as hackstream, the edge workers as hackstream-edge, the agent as root, each with only the config environment', async () => {
    const dataDir = scratch();
    // Like a mkdtemp data dir: 0700, root's; its parent already passable.
    chmodSync(dataDir, 0o700);
    chmodSync(dirname(dataDir), 0o711);
    // The operator's file, with a secret only control needs.
    const configFile = join(scratch(), 'hackstream.json');
    writeFileSync(configFile, JSON.stringify({ log: { level: 'debug' }, gateway: { tunnelIdleTimeoutMs: 120_000 }, plugins: { '@acme/hs-sso': { clientSecret: 'only-for-control-7f3a' } } }));
    const p = start({
      HACKSTREAM_CONFIG: configFile,
      HACKSTREAM_DATA_DIR: dataDir,
      HACKSTREAM_EDGE_WORKERS: '2',
      HACKSTREAM_LOG_LEVEL: 'debug',
      HACKSTREAM_DATABASE_URL: 'postgres://u:p@127.0.0.1:1/none',
      SECRET_SAUCE: 'not for children',
      LANG: 'C.UTF-8',
    });
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 30_000);
      const control = lookupUser('hackstream');
      const edge = lookupUser('hackstream-edge');
      assert.ok(control && edge);
      const got = reports(p);
      assert.deepEqual(got.map((r) => [r.child, r.uid]).sort(), [
        ['agent', 0],
        ['control', control.uid],
        ['edge', edge.uid],
        ['edge', edge.uid],
      ]);
      for (const r of got) {
        assert.deepEqual(r.env.filter((k) => !ALLOWED.test(k)), [], `${r.child} sees only config variables`);
        assert.ok(r.env.includes('HACKSTREAM_DATABASE_URL') && r.env.includes('PATH'));
        assert.equal(r.dataDir, dataDir);
        assert.equal(r.runDir, join(dataDir, 'run'));
        assert.equal(r.controlUid, String(control.uid));
        assert.equal(r.edgeUid, String(edge.uid));
      }
      assert.equal(logs(p, 'not running as root: every process runs as this user, without privilege separation').length, 0);
      assert.equal(statSync(dataDir).mode & 0o777, 0o711, 'the data dir is made passable');
      assert.equal(logs(p, 'the service users cannot pass through a parent of the data dir: chmod o+x it or choose another data dir').length, 0);
      assert.equal(statSync(join(dataDir, 'run/control')).uid, control.uid);
      // The edge reads only its part of the configuration, never the operator's file.
      const edgeFile = join(dataDir, 'run', 'edge-config.json');
      assert.deepEqual([...new Set(got.map((r) => `${r.child} ${r.config}`))].sort(), [`agent ${configFile}`, `control ${configFile}`, `edge ${edgeFile}`]);
      assert.deepEqual(JSON.parse(readFileSync(edgeFile, 'utf8')), { log: { level: 'debug' }, gateway: { tunnelIdleTimeoutMs: 120_000 } });
      const st = statSync(edgeFile);
      assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [0o640, 0, edge.gid]);
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('without a databaseUrl: starts the embedded PostgreSQL server first, as hackstream, hands its socket dir to every child, and stops it last', async () => {
    const dataDir = scratch();
    chmodSync(dirname(dataDir), 0o711);
    const p = start({ HACKSTREAM_DATA_DIR: dataDir, HACKSTREAM_EDGE_WORKERS: '1' });
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 120_000);
      const started = logs(p, 'child started').map((l) => l.child);
      assert.deepEqual(started, ['store', 'agent', 'control', 'edge']);
      const store = logs(p, 'child ready').find((l) => l.child === 'store');
      const pgPid = store?.pid as number;
      assert.equal(uidOf(pgPid), lookupUser('hackstream')?.uid, 'PostgreSQL runs as hackstream');
      const got = reports(p);
      assert.equal(got.length, 3);
      const socketDir = got[0]?.pgSocketDir;
      assert.ok(socketDir && existsSync(join(socketDir, '.s.PGSQL.5432')), 'the socket is there');
      for (const r of got) assert.equal(r.pgSocketDir, socketDir, `${r.child} got the socket dir`);
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
      assert.deepEqual(
        logs(p, 'child stopped').map((l) => l.child),
        ['edge', 'control', 'agent', 'store'],
      );
      assert.equal(existsSync(`/proc/${pgPid}`), false, 'PostgreSQL is gone');
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('as another user: every process runs as that user, after one warning, and still starts and stops', async () => {
    const dataDir = scratch();
    const nobody = lookupUser('nobody');
    assert.ok(nobody);
    chmodSync(dirname(dataDir), 0o711);
    chownSync(dataDir, nobody.uid, nobody.gid);
    const p = start({ HACKSTREAM_DATA_DIR: dataDir, HACKSTREAM_EDGE_WORKERS: '1', HACKSTREAM_DATABASE_URL: 'postgres://u:p@127.0.0.1:1/none' }, nobody);
    try {
      await waitForLine(p, /"msg":"all processes ready"/, 30_000);
      const warned = logs(p, 'not running as root: every process runs as this user, without privilege separation');
      assert.equal(warned.length, 1);
      assert.equal(warned[0]?.uid, nobody.uid);
      const got = reports(p);
      assert.deepEqual(got.map((r) => [r.child, r.uid]).sort(), [
        ['agent', nobody.uid],
        ['control', nobody.uid],
        ['edge', nobody.uid],
      ]);
      for (const r of got) assert.deepEqual([r.controlUid, r.edgeUid, r.runDir], [String(nobody.uid), String(nobody.uid), join(dataDir, 'run')]);
      assert.equal(statSync(join(dataDir, 'run/agent')).uid, nobody.uid);
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
