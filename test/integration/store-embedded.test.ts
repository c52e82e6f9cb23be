import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { silentLogger } from '../../lib/log.js';
import { lockAuditChain } from '../../core/store/audit-chain.js';
import { openDatabase } from '../../core/store/database.js';
import { embeddedConnection, embeddedPaths, EmbeddedStoreError, startEmbeddedStore } from '../../core/store/embedded.js';
import { AuditEntryEntity, RefreshTokenEntity, UserEntity } from '../../core/store/entities.js';
import { ADMIN, startApi } from '../helpers/api.js';
import { seedEmbedded, tempDir } from '../helpers/store.js';

/*
 * The embedded store as processes see it: a private PostgreSQL server per data dir, files
 * under <dataDir>/state/pg, a socket only its user reaches, shared by several openers and
 * processes, durable settings, gone when its owner closes or dies, and data kept across a
 * restart and across SIGKILL of the server itself. Child modes of this same file
 * (STORE_CHILD set) play the other processes.
 */

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function commitLoop(dataDir: string): Promise<void> {
  const db = await openDatabase({ dataDir, logger: silentLogger() });
  process.stdout.write('open\n');
  for (let i = 0; ; i++) {
    await db.dataSource.transaction(async (m) => {
      const u = await m.getRepository(UserEntity).save({ username: `crash-${i}` });
      const prevHash = await lockAuditChain(m);
      await m.getRepository(AuditEntryEntity).save({ actor: 'system', action: 'user_create', target: u.id, result: 'success', details: {}, prevHash, hash: sha256(`${prevHash}${u.id}`) });
    });
    // Reported only after COMMIT returned: the parent treats these as acknowledged.
    process.stdout.write(`${i}\n`);
  }
}

/** Another process on a server it did not start: writes one row without migrating, then leaves. */
async function joinAndWrite(dataDir: string): Promise<void> {
  const db = await openDatabase({ dataDir, logger: silentLogger(), migrate: false });
  await db.dataSource.getRepository(UserEntity).save({ username: 'from-another-process' });
  process.stdout.write(`${JSON.stringify({ kind: db.kind })}\n`);
  await db.close();
}

/** Opens (owning the server), reports the postmaster's pid, then waits to be killed. */
async function holdOpen(dataDir: string): Promise<void> {
  await openDatabase({ dataDir, logger: silentLogger() });
  process.stdout.write(`${postmasterPid(dataDir)}\n`);
  setInterval(() => undefined, 60_000);
}

/** Starts or joins the server, reports how, and stops its handle when stdin closes. */
async function race(dataDir: string): Promise<void> {
  const store = await startEmbeddedStore({ dataDir, logger: silentLogger() });
  process.stdout.write(`${JSON.stringify({ owned: store.owned, created: store.created, pid: store.pid })}\n`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
  await store.stop();
}

function postmasterPid(dataDir: string): number {
  return Number(readFileSync(join(embeddedPaths(dataDir).pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** Every live process of the data dir's server: the postmaster (by its -D) and its children. */
function serverPids(dataDir: string): number[] {
  const { pgdata } = embeddedPaths(dataDir);
  const procs: { pid: number; ppid: number; cmd: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      procs.push({ pid: Number(name), ppid, cmd: readFileSync(`/proc/${name}/cmdline`, 'utf8') });
    } catch {
      // Exited while we looked.
    }
  }
  const masters = procs.filter((p) => p.cmd.includes(`\0-D\0${pgdata}\0`)).map((p) => p.pid);
  return [...masters, ...procs.filter((p) => masters.includes(p.ppid)).map((p) => p.pid)];
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const CHILD = process.env.STORE_CHILD;
const CHILD_DATA_DIR = process.env.STORE_CHILD_DATA_DIR ?? '';
if (CHILD === 'commit-loop') await commitLoop(CHILD_DATA_DIR);
else if (CHILD === 'join') await joinAndWrite(CHILD_DATA_DIR);
else if (CHILD === 'hold') await holdOpen(CHILD_DATA_DIR);
else if (CHILD === 'race') await race(CHILD_DATA_DIR);
else {
  describe('embedded store', () => {
    const dirs: string[] = [];
    const newDataDir = async (seed = true) => {
      const dir = tempDir();
      dirs.push(dir);
      if (seed) await seedEmbedded(dir);
      return dir;
    };
    const children: ChildProcess[] = [];
    const child = (mode: string, dataDir: string) => {
      const c = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
        env: { ...process.env, STORE_CHILD: mode, STORE_CHILD_DATA_DIR: dataDir },
        stdio: [mode === 'race' ? 'pipe' : 'ignore', 'pipe', 'inherit'],
      });
      children.push(c);
      return { c, lines: createInterface({ input: c.stdout! }) };
    };
    const exitOf = (c: ChildProcess) => new Promise<number | null>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(c.exitCode) : c.once('exit', resolve)));
    after(() => {
      for (const c of children) c.kill('SIGKILL');
      for (const d of dirs) {
        for (const pid of serverPids(d)) process.kill(pid, 'SIGKILL');
        rmSync(d, { recursive: true, force: true });
      }
    });

    it('runs a private, socket-only server under <dataDir>/state/pg and leaves no process behind when closed', async () => {
      const dataDir = await newDataDir();
      const db = await openDatabase({ dataDir, logger: silentLogger() });
      const { pgdata, socketDir } = embeddedPaths(dataDir);
      assert.equal(db.kind, 'embedded');
      assert.ok(existsSync(`${pgdata}/PG_VERSION`));
      assert.equal(statSync(pgdata).mode & 0o777, 0o700, 'cluster is private');
      assert.equal(statSync(socketDir).mode & 0o777, 0o700, 'socket dir is private');
      const pid = postmasterPid(dataDir);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      if (process.getuid?.() === 0) assert.notEqual(uid, 0, 'never runs as root');
      assert.equal(statSync(socketDir).uid, uid, 'the socket dir belongs to the server user');
      const show = async (name: string) => ((await db.dataSource.query(`SHOW ${name}`)) as Record<string, string>[])[0]?.[name];
      assert.equal(await show('listen_addresses'), '', 'no TCP');
      assert.equal(await show('unix_socket_permissions'), '0700');
      assert.ok(serverPids(dataDir).length > 1, 'a postmaster and its helpers run');
      await db.close();
      await db.close();
      assert.deepEqual(serverPids(dataDir), [], 'no server process left');
      assert.ok(!existsSync(join(socketDir, '.s.PGSQL.5432')), 'socket removed');
      assert.ok(!existsSync(join(pgdata, 'postmaster.pid')), 'clean shutdown');
    });

    it('a test app (startApi, embedded) starts its server and stops it on close, leaving no process or data dir', async () => {
      const api = await startApi();
      const pid = postmasterPid(api.dataDir);
      assert.ok(serverPids(api.dataDir).includes(pid));
      await api.login(ADMIN.username, ADMIN.password);
      await api.close();
      assert.deepEqual(serverPids(api.dataDir), [], 'no server process left');
      assert.ok(!existsSync(api.dataDir), 'data dir removed');
    });

    it('acknowledges a commit only once it is on disk (fsync, synchronous_commit, full_page_writes on)', async () => {
      const dataDir = await newDataDir();
      const db = await openDatabase({ dataDir, logger: silentLogger() });
      try {
        for (const name of ['fsync', 'synchronous_commit', 'full_page_writes']) {
          assert.deepEqual(await db.dataSource.query(`SHOW ${name}`), [{ [name]: 'on' }], name);
        }
      } finally {
        await db.close();
      }
    });

    it('creates the cluster on first use (initdb) and keeps users, tokens and audit rows across a restart', async () => {
      const dataDir = await newDataDir(false);
      let db = await openDatabase({ dataDir, logger: silentLogger() });
      const { id } = await db.dataSource.getRepository(UserEntity).save({ username: 'restart-me', role: 'admin' });
      await db.dataSource.getRepository(RefreshTokenEntity).save({ userId: id, familyId: id, tokenHash: sha256('t'), expiresAt: new Date(Date.now() + 60_000) });
      await db.dataSource.transaction(async (m) => {
        const prevHash = await lockAuditChain(m);
        await m.getRepository(AuditEntryEntity).save({ actor: id, action: 'authn_login', result: 'success', details: {}, prevHash, hash: sha256('a1') });
      });
      await db.close();
      db = await openDatabase({ dataDir, logger: silentLogger() });
      try {
        assert.equal((await db.dataSource.getRepository(UserEntity).findOneByOrFail({ id })).role, 'admin');
        assert.equal(await db.dataSource.getRepository(RefreshTokenEntity).countBy({ userId: id }), 1);
        assert.equal(await db.dataSource.getRepository(AuditEntryEntity).countBy({ actor: id }), 1);
      } finally {
        await db.close();
      }
    });

    it('serves two openers in one process and another process at once; the server stops with its last opener here', async () => {
      const dataDir = await newDataDir();
      const first = await openDatabase({ dataDir, logger: silentLogger() });
      const second = await openDatabase({ dataDir, logger: silentLogger() });
      const pid = postmasterPid(dataDir);
      const { c, lines } = child('join', dataDir);
      const [report] = await Promise.all([new Promise<string>((resolve) => lines.once('line', resolve)), exitOf(c)]);
      assert.equal(c.exitCode, 0);
      assert.deepEqual(JSON.parse(report), { kind: 'embedded' });
      assert.equal(postmasterPid(dataDir), pid, 'the other process joined, it did not stop the server');
      await first.close();
      assert.equal(await second.dataSource.getRepository(UserEntity).countBy({ username: 'from-another-process' }), 1);
      const conn = await embeddedConnection(dataDir);
      const client = new pg.Client(conn);
      await client.connect();
      assert.deepEqual((await client.query('SELECT count(*)::int AS n FROM users')).rows, [{ n: 1 }]);
      await client.end();
      await second.close();
      assert.deepEqual(serverPids(dataDir), []);
      await assert.rejects(embeddedConnection(dataDir), (err: unknown) => {
        assert.ok(err instanceof EmbeddedStoreError);
        assert.equal(err.code, 'EMBEDDED_NOT_RUNNING');
        assert.ok(err.message.includes(dataDir), err.message);
        return true;
      });
    });

    it('two processes starting on a fresh data dir at once: one runs initdb and the server, the other joins it', async () => {
      const dataDir = await newDataDir(false);
      const racers = [child('race', dataDir), child('race', dataDir)];
      const reports = await Promise.all(
        racers.map(({ lines }) => new Promise<string>((resolve) => lines.once('line', resolve)).then((l) => JSON.parse(l) as { owned: boolean; created: boolean; pid: number })),
      );
      assert.deepEqual(reports.map((r) => r.owned).sort(), [false, true], JSON.stringify(reports));
      assert.equal(reports[0]?.pid, reports[1]?.pid, 'one server');
      assert.ok(reports.find((r) => r.owned)?.created, 'the owner ran initdb');
      for (const { c } of racers) c.stdin?.end();
      assert.deepEqual(await Promise.all(racers.map(({ c }) => exitOf(c))), [0, 0]);
      await until('the server to stop with its owner', () => serverPids(dataDir).length === 0);
    });

    it('starts over a stale postmaster.pid (its process gone, or its pid reused by another program)', async () => {
      const dataDir = await newDataDir();
      const { pgdata } = embeddedPaths(dataDir);
      const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
      children.push(sleeper);
      const gone = spawn('true', { stdio: 'ignore' });
      await exitOf(gone);
      for (const stalePid of [sleeper.pid, gone.pid]) {
        writeFileSync(join(pgdata, 'postmaster.pid'), `${stalePid}\n${pgdata}\n1700000000\n5432\n/nowhere\n\n  1234   5678\nready   \n`);
        const db = await openDatabase({ dataDir, logger: silentLogger() });
        assert.notEqual(postmasterPid(dataDir), stalePid);
        await db.close();
      }
      sleeper.kill('SIGKILL');
    });

    it('stops when the process that started it is SIGKILLed, and starts again afterwards', async () => {
      const dataDir = await newDataDir();
      const { c, lines } = child('hold', dataDir);
      const pid = Number(await new Promise<string>((resolve) => lines.once('line', resolve)));
      assert.ok(serverPids(dataDir).includes(pid));
      c.kill('SIGKILL');
      await exitOf(c);
      await until('the orphaned server to exit', () => serverPids(dataDir).length === 0);
      const db = await openDatabase({ dataDir, logger: silentLogger() });
      await db.close();
    });

    it('keeps every acknowledged commit, each with its audit row, when the server processes are SIGKILLed', async () => {
      const dataDir = await newDataDir();
      const { c, lines } = child('commit-loop', dataDir);
      let acknowledged = -1;
      await new Promise<void>((resolve, reject) => {
        c.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
        lines.on('line', (line) => {
          if (line === 'open') return;
          acknowledged = Number(line);
          // Kill mid-stream, at a point the writer does not choose.
          if (acknowledged >= 40 + Math.floor(Math.random() * 20)) resolve();
        });
      });
      c.removeAllListeners('exit');
      // Not a shutdown: every server process dies at once, as in a crash.
      for (const pid of serverPids(dataDir)) process.kill(pid, 'SIGKILL');
      await until('the server processes to die', () => serverPids(dataDir).length === 0);
      c.kill('SIGKILL');
      await exitOf(c);

      const db = await openDatabase({ dataDir, logger: silentLogger() });
      try {
        const names = new Set((await db.dataSource.getRepository(UserEntity).find()).map((u) => u.username));
        for (let i = 0; i <= acknowledged; i++) assert.ok(names.has(`crash-${i}`), `commit ${i} kept`);
        const audited = await db.dataSource.getRepository(AuditEntryEntity).countBy({ action: 'user_create' });
        assert.equal(audited, names.size, 'no user without its audit row, no audit row without its user');
      } finally {
        await db.close();
      }
    });
  });
}
