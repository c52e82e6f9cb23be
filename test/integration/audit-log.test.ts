import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import type { DataSource, EntityManager } from 'typeorm';
import { canonicalJson, type JsonObject } from '../../core/audit/details.js';
import { auditRowHash } from '../../core/audit/hash.js';
import {
  auditedTransaction,
  queryAudit,
  recordAudit,
  recordStandaloneAudit,
  verifyAuditChain,
  type AuditAction,
  type AuditExportItem,
  type AuditInput,
} from '../../core/audit/index.js';
import type { AuditEvent } from '../../core/plugin/contract.js';
import { AUDIT_GENESIS_HASH } from '../../core/store/audit-chain.js';
import { AuditEntryEntity, UserEntity } from '../../core/store/entities.js';
import { pgErrorCode } from '../../core/store/errors.js';
import { DATABASE_KINDS, openTestDatabase, type TestDatabase } from '../helpers/store.js';

/*
 * The audit layer against both databases: real Postgres (its own schema, as the non-superuser
 * test role that owns the tables, like the app) and the embedded PGlite store.
 *
 * Tampering needs a privileged path, because the app cannot change audit_log: a trigger
 * refuses UPDATE/DELETE/TRUNCATE for everyone and the migration revoked those privileges
 * from the owner. The table owner (or a superuser) can, in one transaction, grant itself
 * UPDATE/DELETE back, disable the trigger, change rows, and undo both before committing.
 * `privileged()` does exactly that; it is what an attacker with owner credentials could do,
 * and what the verifier must catch.
 */

async function privileged(ds: DataSource, sql: string, params: unknown[] = []): Promise<void> {
  await ds.transaction(async (m) => {
    await m.query('GRANT UPDATE, DELETE ON audit_log TO CURRENT_USER');
    await m.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
    await m.query(sql, params);
    await m.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
    await m.query('REVOKE UPDATE, DELETE ON audit_log FROM CURRENT_USER');
  });
}

/** Recomputes a row's hash as the audit layer would after changing its actor (an attacker who re-hashes). */
async function rehash(ds: DataSource, id: string, actor: string): Promise<string> {
  const row = await ds.getRepository(AuditEntryEntity).findOneByOrFail({ id });
  const { prevHash, at, action, target, sourceIp, result } = row;
  return auditRowHash(prevHash, { id, at, actor, action, target, sourceIp, result, details: canonicalJson(row.details as JsonObject) });
}

async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  return assert.fail('expected a rejection');
}

const entry = (over: Partial<AuditInput> = {}): AuditInput => ({
  actor: 'system',
  action: 'user_updated',
  target: null,
  sourceIp: '192.0.2.10',
  result: 'success',
  ...over,
});

const failure = (report: Awaited<ReturnType<typeof verifyAuditChain>>) => (report.ok ? null : { rowId: report.rowId, reason: report.reason });

for (const kind of DATABASE_KINDS) {
  describe(`audit log (${kind})`, () => {
    let t: TestDatabase;
    const ds = () => t.db.dataSource;
    const count = () => ds().getRepository(AuditEntryEntity).count();

    before(async () => {
      t = await openTestDatabase(kind);
    });
    after(async () => {
      await t?.cleanup();
    });

    it('keeps neither the user nor the audit row when the transaction fails after both', async () => {
      const before = await count();
      const events: AuditEvent[] = [];
      const err = await rejection(() =>
        auditedTransaction(
          ds(),
          async (tx) => {
            const user = await tx.manager.getRepository(UserEntity).save({ username: 'ghost' });
            await tx.audit(entry({ action: 'user_created', target: user.id }));
            throw new Error('boom after both');
          },
          { emit: (e) => events.push(e) },
        ),
      );
      assert.equal((err as Error).message, 'boom after both');
      assert.equal(await ds().getRepository(UserEntity).countBy({ username: 'ghost' }), 0, 'no user');
      assert.equal(await count(), before, 'no audit row');
      assert.deepEqual(events, [], 'nothing reaches the sinks');
    });

    it('keeps neither when the audit insert itself fails (a constraint error)', async () => {
      // A test-only constraint makes the database refuse this one audit row at INSERT time.
      await ds().query(`ALTER TABLE audit_log ADD CONSTRAINT audit_test_refuse CHECK (actor <> 'refuse-me') NOT VALID`);
      try {
        const before = await count();
        const err = await rejection(() =>
          ds().transaction(async (m) => {
            await m.getRepository(UserEntity).save({ username: 'phantom' });
            await recordAudit(m, entry({ actor: 'refuse-me', action: 'user_created', target: 'phantom' }));
          }),
        );
        assert.equal(pgErrorCode(err), '23514');
        assert.equal(await ds().getRepository(UserEntity).countBy({ username: 'phantom' }), 0, 'the change rolled back');
        assert.equal(await count(), before);
      } finally {
        await ds().query('ALTER TABLE audit_log DROP CONSTRAINT audit_test_refuse');
      }
    });

    it('commits both together, emits after the commit, and a rolled-back row leaves no gap', async () => {
      const events: AuditEvent[] = [];
      const user = await auditedTransaction(
        ds(),
        async (tx) => {
          const u = await tx.manager.getRepository(UserEntity).save({ username: 'carol' });
          const row = await tx.audit(entry({ actor: 'admin-1', action: 'user_created', target: u.id, details: { role: 'user' } }));
          assert.deepEqual(events, [], 'not emitted before the commit');
          assert.equal(row.target, u.id);
          return u;
        },
        { emit: (e) => events.push(e) },
      );
      const [event] = events;
      assert.ok(event && events.length === 1);
      assert.deepEqual(
        { actor: event.actor, action: event.action, target: event.target, ip: event.ip, result: event.result },
        { actor: 'admin-1', action: 'user_created', target: user.id, ip: '192.0.2.10', result: 'success' },
      );
      assert.match(event.at, /Z$/);
      // An audited change that fails on a later statement: the id it took is free again.
      const err = await rejection(() =>
        ds().transaction(async (m) => {
          await recordAudit(m, entry({ action: 'user_created', target: 'dup' }));
          await m.getRepository(UserEntity).save({ username: 'CAROL' });
        }),
      );
      assert.equal(pgErrorCode(err), '23505');
      const next = await recordStandaloneAudit(ds(), entry({ action: 'authz_fail', result: 'failure' }));
      assert.equal(BigInt(next.id), BigInt(event.id) + 1n, 'ids stay gapless');
      assert.deepEqual(await verifyAuditChain(ds()), { ok: true, rows: await count(), head: next.hash });
    });

    it('refuses to run outside a transaction or with an action of the wrong shape', async () => {
      await assert.rejects(() => recordAudit(ds().manager, entry()), /inside a transaction/);
      await assert.rejects(() => ds().transaction((m) => recordAudit(m, entry({ action: 'User Created' as AuditAction }))), /wrong shape/);
    });

    it('any input (controls, lone surrogates, odd numbers, deep details) round-trips and verifies (property)', async () => {
      const text = fc.string({ unit: 'binary', maxLength: 40 });
      const value = fc.oneof(text, fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.double(), { maxLength: 3 }));
      const details = fc.dictionary(text, fc.oneof(value, fc.dictionary(text, value, { maxKeys: 3 })), { maxKeys: 5 });
      const before = await count();
      await fc.assert(
        fc.asyncProperty(fc.option(text), fc.option(text), fc.option(fc.oneof(fc.ipV4(), fc.ipV6(), text)), details, async (actor, target, sourceIp, d) => {
          const row = await recordStandaloneAudit(ds(), entry({ actor, target, sourceIp, details: d }));
          const stored = await ds().getRepository(AuditEntryEntity).findOneByOrFail({ id: row.id });
          assert.deepEqual({ ...stored, details: { ...stored.details } }, { ...row, details: { ...row.details } });
        }),
        { numRuns: 40 },
      );
      assert.deepEqual({ ...(await verifyAuditChain(ds())), head: undefined }, { ok: true, rows: before + 40, head: undefined });
    });

    it('is append-only for the app: UPDATE, DELETE and TRUNCATE are refused', async () => {
      const row = await recordStandaloneAudit(ds(), entry());
      const attempts: [string, (m: EntityManager) => Promise<unknown>][] = [
        ['UPDATE', (m) => m.query(`UPDATE audit_log SET actor = 'mallory' WHERE id = $1`, [row.id])],
        ['UPDATE via the repository', (m) => m.getRepository(AuditEntryEntity).update({ id: row.id }, { result: 'failure' })],
        ['DELETE', (m) => m.query('DELETE FROM audit_log WHERE id = $1', [row.id])],
        ['TRUNCATE', (m) => m.query('TRUNCATE audit_log')],
      ];
      for (const [desc, attempt] of attempts) {
        const err = await rejection(() => ds().transaction(attempt));
        assert.equal(pgErrorCode(err), '42501', `${desc}: ${(err as Error).message}`);
      }
      const stored = await ds().getRepository(AuditEntryEntity).findOneByOrFail({ id: row.id });
      assert.equal(stored.actor, 'system');
      assert.equal((await verifyAuditChain(ds())).ok, true);
    });

    it('50 concurrent writers in separate transactions make one linear chain', async () => {
      const before = await count();
      const rows = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          ds().transaction(async (m) => {
            const u = await m.getRepository(UserEntity).save({ username: `racer-${i}` });
            return recordAudit(m, entry({ actor: 'admin-1', action: 'user_created', target: u.id, details: { i } }));
          }),
        ),
      );
      assert.equal(await count(), before + 50);
      const chain = await ds().getRepository(AuditEntryEntity).find({ order: { id: 'ASC' } });
      chain.forEach((row, n) => {
        assert.equal(BigInt(row.id), BigInt(n + 1), 'ids are 1..n with no gap');
        assert.equal(row.prevHash, n === 0 ? AUDIT_GENESIS_HASH : chain[n - 1]?.hash, `row ${row.id} chains onto the one before`);
        if (n > 0) assert.ok(row.at >= chain[n - 1]!.at, 'time never goes back along the chain');
      });
      assert.deepEqual(new Set(rows.map((r) => r.hash)), new Set(chain.slice(before).map((r) => r.hash)), 'returned rows are the stored ones');
      assert.deepEqual(await verifyAuditChain(ds()), { ok: true, rows: chain.length, head: chain[chain.length - 1]?.hash });
    });

    it('names exactly the tampered row (field, prev_hash, hash), a re-linked row, and a gap', async () => {
      const chain = await ds().getRepository(AuditEntryEntity).find({ order: { id: 'ASC' } });
      assert.ok(chain.length >= 30);
      const [first, second, victim, next] = [chain[0], chain[1], chain[20], chain[21]];
      assert.ok(first && second && victim && next);
      const set = (column: string, cast = '') => `UPDATE audit_log SET ${column} = $2${cast} WHERE id = $1`;
      const tampers: { desc: string; sql: string; bad: unknown; good: unknown }[] = [
        { desc: 'actor changed', sql: set('actor'), bad: 'admin-2', good: victim.actor },
        { desc: 'result changed', sql: set('result'), bad: 'failure', good: victim.result },
        { desc: 'details changed', sql: set('details', '::jsonb'), bad: '{"i": 999}', good: JSON.stringify(victim.details) },
        { desc: 'time moved by 1 ms', sql: set('at'), bad: new Date(victim.at.getTime() + 1).toISOString(), good: victim.at.toISOString() },
        { desc: 'source IP changed', sql: set('source_ip', '::inet'), bad: '198.51.100.1', good: victim.sourceIp },
        { desc: 'hash replaced', sql: set('hash'), bad: 'a'.repeat(64), good: victim.hash },
        { desc: 'prev_hash replaced', sql: set('prev_hash'), bad: 'b'.repeat(64), good: victim.prevHash },
      ];
      for (const c of tampers) {
        await privileged(ds(), c.sql, [victim.id, c.bad]);
        const report = await verifyAuditChain(ds());
        assert.deepEqual(report.ok ? null : { rowId: report.rowId, reason: report.reason, rows: report.rows }, { rowId: victim.id, reason: 'hash_mismatch', rows: 20 }, c.desc);
        await privileged(ds(), c.sql, [victim.id, c.good]);
        assert.equal((await verifyAuditChain(ds())).ok, true, `restored after: ${c.desc}`);
      }

      // A row deleted in the middle: the row after it is named, with the missing id.
      await privileged(ds(), 'DELETE FROM audit_log WHERE id = $1', [victim.id]);
      const gap = await verifyAuditChain(ds());
      assert.deepEqual(failure(gap), { rowId: next.id, reason: 'gap' });
      assert.match(gap.ok ? '' : gap.detail, new RegExp(`row ${victim.id} is missing`));

      // The first row deleted: the chain no longer starts at id 1 / genesis.
      await privileged(ds(), 'DELETE FROM audit_log WHERE id = $1', [first.id]);
      assert.deepEqual(failure(await verifyAuditChain(ds())), { rowId: second.id, reason: 'gap' });

      // Put both back as they were (INSERT is allowed): the chain verifies again.
      for (const row of [first, victim]) {
        await ds().query(
          `INSERT INTO audit_log (id, at, actor, action, target, source_ip, result, details, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6::inet, $7, $8::jsonb, $9, $10)`,
          [row.id, row.at.toISOString(), row.actor, row.action, row.target, row.sourceIp, row.result, JSON.stringify(row.details), row.prevHash, row.hash],
        );
      }
      assert.equal((await verifyAuditChain(ds())).ok, true);

      // A row rewritten AND re-hashed is self-consistent: the break shows at the next row.
      const forgedHash = await rehash(ds(), victim.id, 'admin-2');
      await privileged(ds(), 'UPDATE audit_log SET actor = $2, hash = $3 WHERE id = $1', [victim.id, 'admin-2', forgedHash]);
      assert.deepEqual(failure(await verifyAuditChain(ds())), { rowId: next.id, reason: 'broken_link' });
      await privileged(ds(), 'UPDATE audit_log SET actor = $2, hash = $3 WHERE id = $1', [victim.id, victim.actor, victim.hash]);
      assert.equal((await verifyAuditChain(ds())).ok, true);
    });

    it('stores and exports user input escaped; every row has UTC time, actor, action, target, source IP, result', async () => {
      const evil = 'a\nFAKE LOG\u001b[31m';
      const escaped = 'a\\nFAKE LOG\\u001b[31m';
      const row = await recordStandaloneAudit(
        ds(),
        entry({ actor: evil, action: 'authn_login_fail', target: evil, sourceIp: '::ffff:203.0.113.7', result: 'failure', details: { username: evil, password: 'hunter2' } }),
      );
      const [raw] = (await ds().query('SELECT actor, target, details::text AS details FROM audit_log WHERE id = $1', [row.id])) as {
        actor: string;
        target: string;
        details: string;
      }[];
      assert.equal(raw?.actor, escaped);
      assert.equal(raw?.target, escaped);
      assert.doesNotMatch(`${raw?.actor}${raw?.target}${raw?.details}`, /[\u0000-\u001f\u007f]/, 'no raw control character is stored');
      assert.ok(!raw?.details.includes('hunter2'), 'the password is not stored');

      const item = (await queryAudit(ds(), { action: 'authn_login_fail', limit: 1 })).items[0];
      assert.ok(item);
      assert.deepEqual(
        { id: item.id, actor: item.actor, target: item.target, sourceIp: item.sourceIp, result: item.result, username: item.details.username },
        { id: row.id, actor: escaped, target: escaped, sourceIp: '203.0.113.7', result: 'failure', username: escaped },
      );
      // The export, printed as a log line would be, stays one line with no terminal escape.
      const line = `${item.at} ${item.actor} ${item.action} ${item.target} ${JSON.stringify(item.details)}`;
      assert.doesNotMatch(line, /[\u0000-\u001f\u007f]/);

      for (const r of (await queryAudit(ds(), { limit: 500 })).items) {
        assert.match(r.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, `row ${r.id}: time in UTC`);
        assert.ok(r.actor.length > 0 && r.action.length > 0 && (r.result === 'success' || r.result === 'failure'), `row ${r.id}`);
        assert.ok('target' in r && 'sourceIp' in r);
      }
    });

    it('filters by user, action and time range; pages without repeats or holes', async () => {
      const write = (over: Partial<AuditInput>) => recordStandaloneAudit(ds(), entry(over));
      const batch = async (n: number, over: (i: number) => Partial<AuditInput>) => {
        const out = [];
        for (let i = 0; i < n; i++) out.push(await write(over(i)));
        return out;
      };
      const early = await batch(4, (i) => ({ actor: 'qa-user', action: 'authn_login_success', details: { i } }));
      await sleep(5);
      const middle = await batch(6, (i) => ({ actor: i % 2 ? 'qa-user' : 'qa-admin', target: i % 2 ? null : 'qa-user', action: 'authz_fail', result: 'failure' }));
      await sleep(5);
      const late = await batch(13, () => ({ actor: 'qa-user', action: 'authn_logout' }));

      const ids = (items: AuditExportItem[]) => items.map((r) => r.id);
      const newestFirst = (rows: { id: string }[]) => rows.map((r) => r.id).reverse();

      const byAction = await queryAudit(ds(), { action: 'authz_fail', limit: 500 });
      assert.ok(byAction.items.every((r) => r.action === 'authz_fail'));
      assert.deepEqual(ids(byAction.items).slice(0, middle.length), newestFirst(middle));

      const byUser = await queryAudit(ds(), { user: 'qa-user', limit: 500 });
      assert.deepEqual(ids(byUser.items), newestFirst([...early, ...middle, ...late]), 'as actor or as target, newest first');

      const [lastEarly, firstMiddle, lastMiddle, firstLate] = [early.at(-1), middle[0], middle.at(-1), late[0]];
      assert.ok(lastEarly && firstMiddle && lastMiddle && firstLate);
      assert.ok(lastEarly.at < firstMiddle.at && lastMiddle.at < firstLate.at, 'the batches are apart in time');
      const range = await queryAudit(ds(), { user: 'qa-user', from: firstMiddle.at.toISOString(), to: firstLate.at.toISOString(), limit: 500 });
      assert.deepEqual(ids(range.items), newestFirst(middle), 'from ≤ at < to');
      const combined = await queryAudit(ds(), { user: 'qa-user', action: 'authn_login_success', from: early[0]?.at });
      assert.deepEqual(ids(combined.items), newestFirst(early));

      // Page through qa-user's 23 rows 5 at a time while more of its rows are appended.
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await queryAudit(ds(), { user: 'qa-user', limit: 5, ...(cursor ? { cursor } : {}) });
        seen.push(...ids(page.items));
        cursor = page.nextCursor ?? undefined;
        pages++;
        await write({ actor: 'qa-user', action: 'user_updated' });
      } while (cursor);
      assert.equal(pages, 5);
      assert.deepEqual(seen, ids(byUser.items), 'no duplicates and nothing missing');

      assert.deepEqual(await queryAudit(ds(), { user: 'nobody-at-all' }), { items: [], nextCursor: null });
      await assert.rejects(() => queryAudit(ds(), { limit: 501 }), { code: 'VALIDATION_FAILED' });
    });

    it('keeps the chain across a restart', async () => {
      const before = await verifyAuditChain(ds());
      assert.ok(before.ok);
      await t.reopen();
      const row = await recordStandaloneAudit(ds(), entry({ action: 'sys_startup' }));
      assert.deepEqual(await verifyAuditChain(ds()), { ok: true, rows: before.rows + 1, head: row.hash });
    });

    it('escapes on export a row written around recordAudit, and the verifier names it', async () => {
      const evil = 'a\nFAKE LOG\u001b[31m';
      await ds().transaction(async (m) => {
        const [tip] = (await m.query('SELECT id::text AS id, hash FROM audit_log ORDER BY audit_log.id DESC LIMIT 1')) as { id: string; hash: string }[];
        await m.query(
          `INSERT INTO audit_log (id, actor, action, result, target, prev_hash, hash) VALUES ($1, $2, 'authn_login_fail', 'failure', $2, $3, $4)`,
          [String(BigInt(tip?.id ?? '0') + 1n), evil, tip?.hash, 'c'.repeat(64)],
        );
      });
      const forged = (await queryAudit(ds(), { limit: 1 })).items[0];
      assert.ok(forged);
      assert.equal(forged.actor, 'a\\nFAKE LOG\\u001b[31m');
      assert.equal(forged.target, forged.actor);
      assert.deepEqual(failure(await verifyAuditChain(ds())), { rowId: forged.id, reason: 'hash_mismatch' });
    });
  });
}
