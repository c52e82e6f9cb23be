import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';
import { spawnHackstream } from '../helpers/server-process.js';
import { TEST_DATABASE_URL } from '../helpers/store.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/plugins/third-party/', import.meta.url));
const HELLO = join(FIXTURES, 'hs-hello');
const BUILT_INS = { 'auth-local': {}, 'quota-default': {} };

/** What every way of loading acme-hello must give: storage, KV and the caller, through the real server. */
function notesBehaviour(api: () => TestApi): void {
  it('a route without a token sees no principal and refuses; a bad token is no principal either', async () => {
    const none = await api().request('POST', '/v1/plugins/acme-hello/notes', { body: { text: 'hi' } });
    assert.equal(none.status, 401);
    assert.equal(errorCode(none), 'AUTH_REQUIRED');
    const bad = await api().request('GET', '/v1/plugins/acme-hello/notes', { token: 'hs_at_not-a-real-token' });
    assert.equal(bad.status, 401);
  });

  it('stores and reads rows through its own schema, uses the KV once per caller, and sees caller and address', async () => {
    const token = await api().adminToken();
    const first = await api().request('POST', '/v1/plugins/acme-hello/notes', { token, body: { text: 'first note' } });
    assert.equal(first.status, 201, first.text);
    assert.deepEqual(first.json, { id: 1, owner: 'root-admin', first: true });
    const second = await api().request('POST', '/v1/plugins/acme-hello/notes', { token, body: { text: 'second note' } });
    assert.deepEqual(second.json, { id: 2, owner: 'root-admin', first: false });
    const tooLong = await api().request('POST', '/v1/plugins/acme-hello/notes', { token, body: { text: 'x'.repeat(51) } });
    assert.equal(tooLong.status, 400, 'the plugin options (maxNoteLength 50) reached it');
    const list = await api().request('GET', '/v1/plugins/acme-hello/notes', { token, localAddress: '127.0.0.3' });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json, {
      caller: { username: 'root-admin', role: 'admin' },
      ip: '127.0.0.3',
      notes: [
        { id: 1, text: 'first note' },
        { id: 2, text: 'second note' },
      ],
    });
  });
}

describe('a third-party plugin loaded by path (embedded store)', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi({ config: { plugins: { ...BUILT_INS, [HELLO]: { maxNoteLength: 50 } } } });
  });
  after(() => api?.close());
  notesBehaviour(() => api);
});

describe('a third-party plugin loaded by package name from pluginsDir (shared Postgres)', () => {
  let api: TestApi;
  const pluginsDir = mkdtempSync(join(tmpdir(), 'hs-plugins-dir-'));
  before(async () => {
    mkdirSync(join(pluginsDir, 'node_modules', '@acme'), { recursive: true });
    symlinkSync(HELLO, join(pluginsDir, 'node_modules', '@acme', 'hs-hello'));
    api = await startApi({ db: 'postgres', config: { pluginsDir, plugins: { ...BUILT_INS, '@acme/hs-hello': { maxNoteLength: 50 } } } });
  });
  after(async () => {
    await api?.close();
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${api.schema}_p_acme_hello" CASCADE`);
    await admin.end();
    rmSync(pluginsDir, { recursive: true, force: true });
  });
  notesBehaviour(() => api);

  it('another caller is another principal: role user, only its own rows', async () => {
    await api.createUser('note-bob', 'Bob-Notes-Password-7');
    const bob = (await api.login('note-bob', 'Bob-Notes-Password-7')).access_token;
    const posted = await api.request('POST', '/v1/plugins/acme-hello/notes', { token: bob, body: { text: 'bob was here' } });
    assert.deepEqual(posted.json, { id: 3, owner: 'note-bob', first: true });
    const list = await api.request('GET', '/v1/plugins/acme-hello/notes', { token: bob });
    assert.deepEqual((list.json as { caller: unknown; notes: unknown }).caller, { username: 'note-bob', role: 'user' });
    assert.deepEqual((list.json as { notes: unknown }).notes, [{ id: 3, text: 'bob was here' }]);
  });

  it('keeps its table in its own schema and records its migration in the app schema; a restart applies nothing again', async () => {
    await api.restart();
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const rows = await admin.query(`SELECT plugin, id FROM "${api.schema}".plugin_migrations`);
      assert.deepEqual(rows.rows, [{ plugin: 'acme-hello', id: '001-notes' }]);
      const notes = await admin.query(`SELECT count(*)::int AS n FROM "${api.schema}_p_acme_hello".notes`);
      assert.deepEqual(notes.rows, [{ n: 3 }]);
    } finally {
      await admin.end();
    }
  });
});

describe('a plugin written for another contract version, through the real process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hs-plugin-old-'));
  // The supervisor runs the store and control as system users: they must get through to the data dir.
  chmodSync(dir, 0o755);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is refused at start with exit 78, naming the plugin and where it came from', async () => {
    symlinkSync(join(FIXTURES, 'hs-old'), join(dir, 'old'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ plugins: { ...BUILT_INS, './old': {} } }));
    const p = spawnHackstream({ HACKSTREAM_CONFIG: file, HACKSTREAM_LISTEN: '127.0.0.1:0', HACKSTREAM_DATA_DIR: join(dir, 'data'), HACKSTREAM_POOL_SIZE: '0' });
    assert.equal(await p.exit, 78, p.stderr());
    assert.match(p.stderr(), /plugin acme-old \(\.\/old\) was written for plugin contract 1; this HackStream implements contract 2/);
  });
});
