import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { EntityManager } from 'typeorm';
import { AppError } from '../../core/errors.js';
import { AUDIT_GENESIS_HASH, lockAuditChain } from '../../core/store/audit-chain.js';
import {
  AuditEntryEntity,
  ENTITIES,
  QuotaDefaultsEntity,
  RefreshTokenEntity,
  SessionEntity,
  UserEntity,
  type AuditEntry,
  type User,
} from '../../core/store/entities.js';
import { isForeignKeyViolation, isUniqueViolation, mapDatabaseError, pgErrorCode } from '../../core/store/errors.js';
import { MIGRATIONS } from '../../core/store/migrations/index.js';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../helpers/store.js';

/*
 * One contract, two databases: every case runs against real Postgres (a schema of its own)
 * and against the embedded store (a private PostgreSQL server on a temporary data dir).
 */

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Appends one chained audit row inside the caller's transaction, as the audit layer will. */
async function appendAudit(m: EntityManager, row: Pick<AuditEntry, 'actor' | 'action' | 'result'> & Partial<AuditEntry>): Promise<AuditEntry> {
  const prevHash = await lockAuditChain(m);
  const hash = sha256(`${prevHash}|${row.actor}|${row.action}|${randomBytes(8).toString('hex')}`);
  return m.getRepository(AuditEntryEntity).save({ details: {}, ...row, prevHash, hash });
}

async function rejects(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected a rejection');
}

for (const kind of DATABASE_KINDS) {
  describe(`database contract (${kind})`, () => {
    let t: TestDatabase;
    const ds = () => t.db.dataSource;
    const users = () => ds().getRepository(UserEntity);
    const newUser = (username: string, extra: Partial<User> = {}) => users().save(users().create({ username, ...extra }));

    before(async () => {
      t = await openTestDatabase(kind);
    });
    after(async () => {
      await t?.cleanup();
    });

    it('applies the migrations to an empty database', async () => {
      assert.equal(t.db.kind, kind);
      const tables: { table_name: string }[] = await ds().query(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`,
      );
      assert.deepEqual(
        tables.map((r) => r.table_name),
        ['audit_log', 'plugin_migrations', 'quota_defaults', 'refresh_tokens', 'sessions', 'typeorm_migrations', 'users'],
      );
      const applied: { name: string }[] = await ds().query('SELECT name FROM typeorm_migrations');
      assert.deepEqual(
        applied.map((r) => r.name),
        ['Initial1764000000000', 'SessionRuntime1764100000000', 'PluginsV21765000000000', 'QuotaProfile1766000000000'],
      );
    });

    it('maps every entity column onto a column the migrations made, with the same nullability', async () => {
      const cols: { table_name: string; column_name: string; is_nullable: string }[] = await ds().query(
        `SELECT table_name, column_name, is_nullable FROM information_schema.columns WHERE table_schema = current_schema()`,
      );
      const actual = new Map(cols.map((c) => [`${c.table_name}.${c.column_name}`, c.is_nullable === 'YES']));
      for (const entity of ENTITIES) {
        const meta = ds().getMetadata(entity);
        for (const col of meta.columns) {
          const key = `${meta.tableName}.${col.databaseName}`;
          assert.ok(actual.has(key), `${key} exists`);
          assert.equal(actual.get(key), col.isNullable, `${key} nullability`);
        }
      }
    });

    it('re-opening runs no migration again and keeps the data', async () => {
      await newUser('kept-across-reopen');
      await t.reopen();
      const applied: { n: number }[] = await ds().query('SELECT count(*)::int AS n FROM typeorm_migrations');
      assert.equal(applied[0]?.n, MIGRATIONS.length);
      assert.ok(await users().findOneBy({ username: 'kept-across-reopen' }));
    });

    it('creates, reads, updates and deletes users', async () => {
      const u = await newUser('Carol', { passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA' });
      assert.match(u.id, /^[0-9a-f-]{36}$/);
      assert.equal(u.role, 'user', 'role defaults to user');
      assert.equal(u.disabled, false);
      assert.equal(u.tokenEpoch, 0);
      assert.equal(u.quotaMaxSessions, null);
      const found = await users().createQueryBuilder('u').where('lower(u.username) = lower(:name)', { name: 'CAROL' }).getOneOrFail();
      assert.equal(found.id, u.id);
      assert.ok(found.createdAt instanceof Date);

      await new Promise((r) => setTimeout(r, 5));
      await users().update({ id: u.id }, { disabled: true, role: 'admin', quotaMaxSessions: 5, quotaMemoryMb: 4096 });
      await users().increment({ id: u.id }, 'tokenEpoch', 1);
      const changed = await users().findOneByOrFail({ id: u.id });
      assert.deepEqual(
        [changed.disabled, changed.role, changed.quotaMaxSessions, changed.quotaMemoryMb, changed.tokenEpoch],
        [true, 'admin', 5, 4096, 1],
      );
      assert.ok(changed.updatedAt.getTime() > u.updatedAt.getTime(), 'updatedAt moves');

      await users().delete({ id: u.id });
      assert.equal(await users().findOneBy({ id: u.id }), null);
    });

    it('refuses a second username that differs only in case', async () => {
      await newUser('Alice');
      for (const dup of ['alice', 'ALICE', 'aLiCe']) {
        const err = await rejects(() => newUser(dup));
        assert.ok(isUniqueViolation(err), `${dup}: unique violation`);
        const mapped = mapDatabaseError(err);
        assert.ok(mapped instanceof AppError && mapped.code === 'CONFLICT');
      }
    });

    it('refuses values outside the schema (role, control characters, quota)', async () => {
      const cases: [string, Partial<User> & { username: string }][] = [
        ['unknown role', { username: 'r1', role: 'root' as User['role'] }],
        ['control character in username', { username: 'a\nFAKE LOG' }],
        ['empty username', { username: '' }],
        ['negative quota', { username: 'q1', quotaMaxSessions: -1 }],
      ];
      for (const [what, row] of cases) {
        const err = await rejects(() => users().save(users().create(row)));
        assert.equal(pgErrorCode(err), '23514', `${what}: check violation`);
      }
    });

    it('stores refresh tokens by hash only, unique, and revokes a family', async () => {
      const u = await newUser('dave');
      const tokens = ds().getRepository(RefreshTokenEntity);
      const familyId = crypto.randomUUID();
      const expiresAt = new Date(Date.now() + 3600_000);
      const raw = randomBytes(32).toString('base64url');
      const first = await tokens.save({ userId: u.id, familyId, tokenHash: sha256(raw), expiresAt });
      assert.equal(first.parentId, null);
      assert.equal(first.usedAt, null);

      const notAHash = await rejects(() => tokens.save({ userId: u.id, familyId, tokenHash: raw, expiresAt }));
      assert.equal(pgErrorCode(notAHash), '23514', 'a raw token does not fit token_hash');
      assert.ok(isUniqueViolation(await rejects(() => tokens.save({ userId: u.id, familyId, tokenHash: sha256(raw), expiresAt }))));

      // Rotation: the old one is marked used, the new one points at it.
      const now = new Date();
      await tokens.update({ id: first.id }, { usedAt: now, lastUsedAt: now });
      const second = await tokens.save({ userId: u.id, familyId, tokenHash: sha256(`${raw}2`), parentId: first.id, expiresAt });
      const byHash = await tokens.findOneByOrFail({ tokenHash: sha256(`${raw}2`) });
      assert.equal(byHash.id, second.id);
      assert.equal(byHash.parentId, first.id);

      const revoked = await tokens
        .createQueryBuilder()
        .update()
        .set({ revokedAt: () => 'now()' })
        .where('family_id = :familyId AND revoked_at IS NULL', { familyId })
        .execute();
      assert.equal(revoked.affected, 2);

      await users().delete({ id: u.id });
      assert.equal(await tokens.countBy({ familyId }), 0, 'tokens go with their user');
    });

    it('creates sessions and moves them through their states', async () => {
      const u = await newUser('erin');
      const sessions = ds().getRepository(SessionEntity);
      const s = await sessions.save({ userId: u.id, state: 'starting', app: 'firefox', url: 'https://example.org/', profile: 'ephemeral', quality: 'auto' });
      assert.equal(s.endedAt, null);
      for (const state of ['ready', 'connected', 'idle', 'connected', 'stopping'] as const) {
        await sessions.update({ id: s.id }, { state });
      }
      await sessions.update({ id: s.id }, { containerId: 'c0ffee', hostname: `${s.id}.sessions.test`, upstream: { host: '172.18.0.5', port: 14500 } });
      const loaded = await sessions.findOneByOrFail({ id: s.id });
      assert.equal(loaded.state, 'stopping');
      assert.deepEqual(loaded.upstream, { host: '172.18.0.5', port: 14500 });

      const noEnd = await rejects(() => sessions.update({ id: s.id }, { state: 'stopped' }));
      assert.equal(pgErrorCode(noEnd), '23514', 'stopped needs endedAt');
      const badState = await rejects(() => sessions.update({ id: s.id }, { state: 'paused' as never }));
      assert.equal(pgErrorCode(badState), '23514');

      await sessions.update({ id: s.id }, { state: 'failed', endedAt: new Date(), failureReason: 'oom' });
      const ended = await sessions.findOneByOrFail({ id: s.id });
      assert.equal(ended.failureReason, 'oom');
      assert.ok(ended.endedAt instanceof Date);
      const inUse = await rejects(() => users().delete({ id: u.id }));
      assert.ok(isForeignKeyViolation(inUse), 'a user with sessions is kept');
      assert.equal((mapDatabaseError(inUse) as AppError).code, 'CONFLICT');
    });

    it('keeps one live session per hostname', async () => {
      const u = await newUser('frank');
      const sessions = ds().getRepository(SessionEntity);
      const base = { userId: u.id, app: 'firefox', profile: 'persist', quality: 'low', hostname: 'same.sessions.test' } as const;
      const a = await sessions.save({ ...base, state: 'ready' });
      assert.ok(isUniqueViolation(await rejects(() => sessions.save({ ...base, state: 'starting' }))));
      await sessions.update({ id: a.id }, { state: 'stopped', endedAt: new Date() });
      await sessions.save({ ...base, state: 'starting' });
    });

    it('reads and changes the per-role quota defaults', async () => {
      const quotas = ds().getRepository(QuotaDefaultsEntity);
      const rows = await quotas.find({ order: { role: 'ASC' } });
      assert.deepEqual(
        rows.map((r) => r.role),
        ['admin', 'user'],
      );
      const user = rows.find((r) => r.role === 'user');
      assert.ok(user && user.maxSessions >= 1 && user.memoryMb > 0 && user.idleTimeoutS > 0 && user.maxDurationS > 0);
      await quotas.update({ role: 'user' }, { maxSessions: 3 });
      assert.equal((await quotas.findOneByOrFail({ role: 'user' })).maxSessions, 3);
      assert.equal(pgErrorCode(await rejects(() => quotas.update({ role: 'user' }, { cpuMillicores: 0 }))), '23514');
    });

    it('appends chained audit rows and refuses to change or remove them', async () => {
      const audit = ds().getRepository(AuditEntryEntity);
      const first = await ds().transaction((m) =>
        appendAudit(m, {
          actor: 'system',
          action: 'authn_login_fail',
          target: 'a\nFAKE LOG\u001b[31m',
          sourceIp: '127.0.0.1',
          result: 'failure',
          details: { username: 'a\nFAKE LOG\u001b[31m' },
        }),
      );
      const second = await ds().transaction((m) => appendAudit(m, { actor: 'system', action: 'authn_login', result: 'success', sourceIp: '::1' }));
      assert.equal(second.prevHash, first.hash);
      const stored = await audit.findOneByOrFail({ id: first.id });
      assert.equal(typeof stored.id, 'string', 'bigserial ids come back as strings');
      assert.equal(stored.target, 'a\nFAKE LOG\u001b[31m', 'stored as given; escaping is the export’s job');
      assert.deepEqual(stored.details, { username: 'a\nFAKE LOG\u001b[31m' });
      assert.equal(stored.sourceIp, '127.0.0.1');
      assert.ok(stored.at instanceof Date);

      const attempts: [string, () => Promise<unknown>][] = [
        ['UPDATE', () => ds().query(`UPDATE audit_log SET result = 'success' WHERE id = $1`, [first.id])],
        ['UPDATE via the repository', () => audit.update({ id: first.id }, { actor: 'someone-else' })],
        ['DELETE', () => ds().query('DELETE FROM audit_log WHERE id = $1', [first.id])],
        ['DELETE of nothing', () => ds().query('DELETE FROM audit_log WHERE false')],
        ['TRUNCATE', () => ds().query('TRUNCATE audit_log')],
      ];
      for (const [what, attempt] of attempts) {
        const err = await rejects(attempt);
        assert.equal(pgErrorCode(err), '42501', `${what}: refused as insufficient privilege`);
      }
      const after = await audit.findOneByOrFail({ id: first.id });
      assert.deepEqual([after.actor, after.result, after.hash], [stored.actor, stored.result, stored.hash]);
    });

    it('refuses a fork of the audit chain', async () => {
      const audit = ds().getRepository(AuditEntryEntity);
      const tip = await ds().transaction((m) => lockAuditChain(m));
      assert.notEqual(tip, AUDIT_GENESIS_HASH);
      const row = { actor: 'x', action: 'forged', result: 'success' as const, details: {}, prevHash: tip };
      await audit.save({ ...row, hash: sha256('a') });
      const fork = await rejects(() => audit.save({ ...row, hash: sha256('b') }));
      assert.ok(isUniqueViolation(fork), 'two rows cannot chain onto the same one');
      await assert.rejects(() => lockAuditChain(ds().manager), /inside a transaction/);
    });

    it('keeps nothing of a transaction that fails midway', async () => {
      const audit = ds().getRepository(AuditEntryEntity);
      const before = await audit.count();
      await assert.rejects(
        ds().transaction(async (m) => {
          await m.getRepository(UserEntity).save({ username: 'ghost' });
          await appendAudit(m, { actor: 'system', action: 'user_create', target: 'ghost', result: 'success' });
          throw new Error('crash between the change and the commit');
        }),
        /crash between/,
      );
      assert.equal(await users().findOneBy({ username: 'ghost' }), null, 'no user');
      assert.equal(await audit.count(), before, 'no audit row');
    });

    it('runs 20 concurrent transactions without mixing them up', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          ds().transaction(async (m) => {
            const u = await m.getRepository(UserEntity).save({ username: `conc-${i}` });
            await new Promise((r) => setTimeout(r, Math.random() * 5));
            const entry = await appendAudit(m, { actor: u.id, action: 'user_create', target: u.username, result: 'success' });
            if (i % 4 === 3) throw new Error(`rollback ${i}`);
            const mine = await m.getRepository(UserEntity).findOneByOrFail({ id: u.id });
            return { i, ok: mine.username === `conc-${i}`, entryId: entry.id };
          }).catch((err: Error) => ({ i, ok: err.message === `rollback ${i}`, entryId: null })),
        ),
      );
      assert.ok(results.every((r) => r.ok), 'each transaction sees its own rows');
      const kept = await users().createQueryBuilder('u').where("u.username LIKE 'conc-%'").getMany();
      assert.deepEqual(
        kept.map((u) => Number(u.username.slice(5))).sort((a, b) => a - b),
        results.filter((r) => r.i % 4 !== 3).map((r) => r.i),
        'committed ones kept, rolled-back ones gone',
      );
      const chain = await ds().getRepository(AuditEntryEntity).find({ order: { id: 'ASC' } });
      chain.forEach((row, n) => assert.equal(row.prevHash, n === 0 ? AUDIT_GENESIS_HASH : chain[n - 1]?.hash, `row ${row.id} chains onto the one before`));
    });

    it('admits exactly the quota under 20 concurrent creates (row lock on the user)', async () => {
      const u = await newUser('quota-race');
      const limit = 2;
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, () =>
          ds().transaction(async (m) => {
            await m.query('SELECT id FROM users WHERE id = $1 FOR UPDATE', [u.id]);
            const live = await m.getRepository(SessionEntity).createQueryBuilder('s').where('s.user_id = :id AND s.ended_at IS NULL', { id: u.id }).getCount();
            if (live >= limit) return false;
            await m.getRepository(SessionEntity).save({ userId: u.id, state: 'starting', app: 'firefox', profile: 'ephemeral', quality: 'auto' });
            return true;
          }),
        ),
      );
      assert.equal(outcomes.filter(Boolean).length, limit);
      assert.equal(await ds().getRepository(SessionEntity).countBy({ userId: u.id }), limit);
    });

    it('answers ping', async () => {
      await t.db.ping();
    });
  });
}
