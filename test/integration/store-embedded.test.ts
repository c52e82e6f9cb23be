import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import { lockAuditChain } from '../../core/store/audit-chain.js';
import { openDatabase } from '../../core/store/database.js';
import { embeddedPaths } from '../../core/store/embedded.js';
import { AuditEntryEntity, RefreshTokenEntity, UserEntity } from '../../core/store/entities.js';
import { seedEmbedded, tempDir } from '../helpers/store.js';

/*
 * The embedded store as a process sees it: files under <dataDir>/state, one owner at a
 * time, data kept across a restart and across kill -9. The kill test runs this same file
 * as a child process (STORE_CHILD_DATA_DIR set) that commits in a loop until killed.
 */

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function childMain(dataDir: string): Promise<void> {
  const db = await openDatabase({ dataDir, logger: silentLogger() });
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

const CHILD_DATA_DIR = process.env.STORE_CHILD_DATA_DIR;
if (CHILD_DATA_DIR) {
  await childMain(CHILD_DATA_DIR);
} else {
  describe('embedded store', () => {
    const dirs: string[] = [];
    const newDataDir = async () => {
      const dir = tempDir();
      dirs.push(dir);
      await seedEmbedded(dir);
      return dir;
    };
    const children: ChildProcess[] = [];
    after(() => {
      for (const c of children) c.kill('SIGKILL');
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    it('lives under <dataDir>/state, private, and leaves no lock or socket behind when closed', async () => {
      const dataDir = await newDataDir();
      const sockets = () => readdirSync(tmpdir()).filter((n) => n.startsWith('hackstream-db-')).sort();
      const before = sockets();
      const db = await openDatabase({ dataDir, logger: silentLogger() });
      const { stateDir, pgdata, lockFile } = embeddedPaths(dataDir);
      assert.equal(db.kind, 'embedded');
      assert.ok(existsSync(`${pgdata}/PG_VERSION`));
      assert.equal(statSync(stateDir).mode & 0o077, 0, 'state dir is private');
      assert.equal(JSON.parse(readFileSync(lockFile, 'utf8')).pid, process.pid);
      assert.equal(sockets().length, before.length + 1, 'a private socket dir while open');
      await db.close();
      await db.close();
      assert.ok(!existsSync(lockFile), 'lock released');
      assert.deepEqual(sockets(), before, 'socket dir removed');
    });

    it('keeps users, tokens and audit rows across a restart', async () => {
      const dataDir = await newDataDir();
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

    it('refuses a second opener of the same data dir, and takes over a stale lock', async () => {
      const dataDir = await newDataDir();
      const db = await openDatabase({ dataDir, logger: silentLogger() });
      await assert.rejects(openDatabase({ dataDir, logger: silentLogger() }), /already open in this process/);
      await db.close();

      const { lockFile } = embeddedPaths(dataDir);
      const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
      children.push(sleeper);
      const started = readFileSync(`/proc/${sleeper.pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19] ?? null;
      writeFileSync(lockFile, JSON.stringify({ pid: sleeper.pid, started, id: 'other' }));
      await assert.rejects(openDatabase({ dataDir, logger: silentLogger() }), new RegExp(`in use by process ${sleeper.pid}`));

      sleeper.kill('SIGKILL');
      await new Promise((resolve) => sleeper.once('exit', resolve));
      const again = await openDatabase({ dataDir, logger: silentLogger() });
      await again.close();
    });

    it('keeps every acknowledged commit, each with its audit row, through kill -9', async () => {
      const dataDir = await newDataDir();
      const socketDirs = () => new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('hackstream-db-')));
      const before = socketDirs();
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
        env: { ...process.env, STORE_CHILD_DATA_DIR: dataDir },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      let acknowledged = -1;
      const lines = createInterface({ input: child.stdout! });
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
        lines.on('line', (line) => {
          acknowledged = Number(line);
          // Kill mid-stream, at a point the child does not choose.
          if (acknowledged >= 40 + Math.floor(Math.random() * 20)) resolve();
        });
      });
      child.removeAllListeners('exit');
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      // A killed process cannot remove its socket dir; this test's own leftovers only.
      for (const name of socketDirs()) if (!before.has(name)) rmSync(join(tmpdir(), name), { recursive: true, force: true });

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
