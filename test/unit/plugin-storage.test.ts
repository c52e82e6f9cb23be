import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { z } from 'zod';
import { silentLogger } from '../../lib/log.js';
import { definePlugin, type Plugin, type PluginMigration, type PluginStorage } from '../../core/plugin/contract.js';
import { PluginError } from '../../core/plugin/errors.js';
import { startPluginHost } from '../../core/plugin/host.js';
import { pluginSchemaName, pluginStorageProvider, type StorageProvider } from '../../core/plugin/storage.js';
import { openDatabase, type Database } from '../../core/store/database.js';
import { openTestKv, TEST_DATABASE_URL, tempDir, type TestKv } from '../helpers/store.js';
import { fakeServices } from '../fixtures/plugins/harness.js';

/** A plugin whose init hands its storage to the test. */
function storing(name: string, migrations: PluginMigration[], got: Record<string, PluginStorage>): Plugin {
  return definePlugin({
    name,
    version: '1.0.0',
    contract: 2,
    migrations,
    configSchema: z.object({}).strict(),
    exampleConfig: {},
    async init({ storage }) {
      got[name] = storage;
    },
  });
}

describe('plugin storage (real PostgreSQL, real KV)', () => {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const dataDir = tempDir();
  let db: Database;
  let kv: TestKv;
  let provider: StorageProvider;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  const start = async (plugins: Plugin[]) => {
    const got: Record<string, PluginStorage> = {};
    const loaded = plugins.map((p) => ({ plugin: storing(p.name, [...(p.migrations ?? [])], got), options: {} }));
    const host = await startPluginHost(loaded, { logger: silentLogger(), services: fakeServices(), storage: provider });
    return { host, got };
  };
  const recorded = async (plugin: string) =>
    (await admin.query<{ id: string }>(`SELECT id FROM "${schema}".plugin_migrations WHERE plugin = $1 ORDER BY applied_at, id`, [plugin])).rows.map((r) => r.id);

  before(async () => {
    db = await openDatabase({ databaseUrl: TEST_DATABASE_URL, schema, dataDir, logger: silentLogger() });
    kv = await openTestKv('memory');
    provider = pluginStorageProvider({ dataSource: db.dataSource, kv: kv.kv, logger: silentLogger(), databaseSchema: schema, dataDir });
    await admin.connect();
  });
  after(async () => {
    await db.close();
    await kv.cleanup();
    const like = `${schema.replace(/_/g, '\\_')}%`;
    const { rows } = await admin.query<{ n: string }>('SELECT nspname AS n FROM pg_namespace WHERE nspname LIKE $1', [like]);
    for (const { n } of rows) await admin.query(`DROP SCHEMA "${n}" CASCADE`);
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('names schemas after the plugin, apart per test schema, and at most 63 bytes', () => {
    assert.equal(pluginSchemaName('mfa-totp'), 'plugin_mfa_totp');
    assert.equal(pluginSchemaName('mfa-totp', 't_ab12'), 't_ab12_p_mfa_totp');
    const long = pluginSchemaName('a'.repeat(64), schema);
    assert.ok(long.length <= 63);
    assert.notEqual(long, pluginSchemaName(`${'a'.repeat(63)}b`, schema));
  });

  it('applies migrations in order, once each, in the plugin schema; a restart adds only new ones', async () => {
    const first: PluginMigration[] = [
      { id: '001-items', up: 'CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)' },
      { id: '002-seed', up: "INSERT INTO items VALUES (1, 'one'); INSERT INTO items VALUES (2, 'two')" },
    ];
    const a = await start([storing('st-order', first, {})]);
    await a.host.close();
    const b = await start([storing('st-order', [...first, { id: '003-more', up: "INSERT INTO items VALUES (3, 'three')" }], {})]);
    const sql = b.got['st-order']?.sql;
    assert.ok(sql);
    assert.deepEqual(await sql.query('SELECT id, label FROM items ORDER BY id'), [
      { id: 1, label: 'one' },
      { id: 2, label: 'two' },
      { id: 3, label: 'three' },
    ]);
    assert.deepEqual(await recorded('st-order'), ['001-items', '002-seed', '003-more']);
    const where = await admin.query<{ s: string }>("SELECT table_schema AS s FROM information_schema.tables WHERE table_name = 'items' AND table_schema LIKE $1", [`${schema}%`]);
    assert.deepEqual(where.rows.map((r) => r.s), [`${schema}_p_st_order`]);
    await b.host.close();
  });

  it('a failing migration stops start-up naming plugin and migration, and leaves nothing of it', async () => {
    const bad: PluginMigration[] = [
      { id: '001-ok', up: 'CREATE TABLE fine (x int)' },
      { id: '002-broken', up: 'CREATE TABLE half (x int); SELECT no_such_function()' },
    ];
    const err = await start([storing('st-fails', bad, {})]).then(() => assert.fail('started'), (e: unknown) => e);
    assert.ok(err instanceof PluginError, String(err));
    assert.equal(err.plugin, 'st-fails');
    assert.match(err.message, /^plugin "st-fails" migration "002-broken" failed: .*no_such_function/);
    assert.deepEqual(await recorded('st-fails'), ['001-ok']);
    const half = await admin.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'half' AND table_schema = $1", [`${schema}_p_st_fails`]);
    assert.equal(half.rowCount, 0, 'the failed migration was rolled back');
  });

  it('refuses a new migration inserted before one already applied', async () => {
    await (await start([storing('st-gap', [{ id: '002-b', up: 'CREATE TABLE b (x int)' }], {})])).host.close();
    const err = await start([storing('st-gap', [{ id: '001-a', up: 'CREATE TABLE a (x int)' }, { id: '002-b', up: 'CREATE TABLE b (x int)' }], {})]).then(
      () => assert.fail('started'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof PluginError);
    assert.match(err.message, /migration "001-a" comes before "002-b", which is already applied; add new migrations at the end/);
  });

  it('keeps two plugins apart: same table name, own rows; a transaction commits or rolls back as one', async () => {
    const table: PluginMigration[] = [{ id: '001', up: 'CREATE TABLE notes (text text NOT NULL)' }];
    const { host, got } = await start([storing('st-one', table, {}), storing('st-two', table, {})]);
    const one = got['st-one'];
    const two = got['st-two'];
    assert.ok(one && two);
    await one.sql.query('INSERT INTO notes VALUES ($1)', ['from one']);
    await two.sql.transaction(async (q) => {
      await q.query('INSERT INTO notes VALUES ($1)', ['from two']);
      await q.query('INSERT INTO notes VALUES ($1)', ['also two']);
    });
    const failed = two.sql.transaction(async (q) => {
      await q.query('INSERT INTO notes VALUES ($1)', ['rolled back']);
      throw new Error('changed my mind');
    });
    await assert.rejects(failed, /changed my mind/);
    assert.deepEqual(await one.sql.query('SELECT text FROM notes'), [{ text: 'from one' }]);
    assert.deepEqual(await two.sql.query('SELECT text FROM notes ORDER BY text'), [{ text: 'also two' }, { text: 'from two' }]);
    await host.close();
  });

  it('gives a plugin without migrations a schema at its first query', async () => {
    const { host, got } = await start([storing('st-lazy', [], {})]);
    await got['st-lazy']?.sql.query('CREATE TABLE t (x int)');
    assert.deepEqual(await got['st-lazy']?.sql.query('SELECT count(*)::int AS n FROM t'), [{ n: 0 }]);
    await host.close();
  });

  it('namespaces KV keys under plugin:<name>: and sets-if-absent atomically', async () => {
    const { host, got } = await start([storing('kv-a', [], {}), storing('kv-b', [], {})]);
    const a = got['kv-a']?.kv;
    const b = got['kv-b']?.kv;
    assert.ok(a && b);
    await a.set('k', 'from a', { ttlMs: 60_000 });
    assert.equal(await kv.kv.get('plugin:kv-a:k'), 'from a');
    assert.equal(await b.get('k'), null, 'another plugin does not see it');
    const claims = await Promise.all([1, 2, 3, 4].map((i) => b.setIfAbsent('once', String(i), { ttlMs: 60_000 })));
    assert.equal(claims.filter(Boolean).length, 1);
    assert.equal(await b.delete('once'), true);
    assert.equal(await b.setIfAbsent('once', 'again', { ttlMs: 60_000 }), true);
    await host.close();
  });

  it('gives each plugin a private folder <dataDir>/plugin-data/<name>, 0700 even if it was widened', async () => {
    mkdirSync(join(dataDir, 'plugin-data', 'dir-b'), { recursive: true, mode: 0o755 });
    const { host, got } = await start([storing('dir-a', [], {}), storing('dir-b', [], {})]);
    assert.equal(got['dir-a']?.dir, join(dataDir, 'plugin-data', 'dir-a'));
    for (const name of ['dir-a', 'dir-b']) assert.equal(statSync(join(dataDir, 'plugin-data', name)).mode & 0o777, 0o700, name);
    await host.close();
    const none = pluginStorageProvider({ dataSource: db.dataSource, kv: kv.kv, logger: silentLogger(), databaseSchema: schema });
    assert.equal((await none(storing('dir-c', [], {}))).dir, null, 'no data dir, no folder');
  });
});
