import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { runAdminCli, type CliIo } from '../../core/admin-cli.js';
import { startApi, type TestApi } from '../helpers/api.js';

/*
 * `npm run admin -- …` (core/admin-cli.ts) against the database of a running server
 * (Postgres: the server keeps running; its next request sees the change) and against the
 * embedded store (a private PostgreSQL server the CLI joins, or starts when none runs).
 */

function io(stdin = ''): CliIo & { out: (t: string) => void; text: () => string; errors: () => string } {
  let out = '';
  let err = '';
  return {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readLine: async () => stdin,
    text: () => out,
    errors: () => err,
  };
}

describe('admin CLI on Postgres, next to a running server', () => {
  let api: TestApi;
  let env: NodeJS.ProcessEnv;
  const cli = async (args: string[], stdin = '') => {
    const t = io(stdin);
    const code = await runAdminCli(args, t, env);
    return { code, out: t.text(), err: t.errors() };
  };
  before(async () => {
    api = await startApi({ db: 'postgres' });
    env = { HACKSTREAM_DATA_DIR: api.dataDir, HACKSTREAM_DATABASE_URL: api.databaseUrl, HACKSTREAM_LOG_LEVEL: 'silent' };
  });
  after(async () => {
    await api?.close();
  });

  it('creates users with a password from stdin or a generated one, audited as cli:<os user>', async () => {
    const a = await cli(['create', 'cli-alice', '--password-stdin'], 'alice from the cli');
    assert.equal(a.code, 0, a.err);
    assert.match(a.out, /^created user cli-alice \([0-9a-f-]{36}\)\n$/);
    await api.login('cli-alice', 'alice from the cli');
    const b = await cli(['create', 'cli-bob', '--role', 'admin']);
    assert.equal(b.code, 0, b.err);
    const generated = /password \(shown once\): (\S+)/.exec(b.out)?.[1];
    assert.ok(generated);
    const pair = await api.login('cli-bob', generated);
    assert.equal(((await api.request('GET', '/v1/me', { token: pair.access_token })).json as { role: string }).role, 'admin');
    const rows = await api.request('GET', '/v1/audit?action=user_created&limit=10', { token: await api.adminToken() });
    const actors = (rows.json as { items: { actor: string }[] }).items.map((r) => r.actor);
    assert.ok(actors.includes(`cli:${userInfo().username}`), actors.join());
    const dup = await cli(['create', 'CLI-ALICE', '--password-stdin'], 'another password');
    assert.equal(dup.code, 1);
    assert.match(dup.err, /already exists/);
    const weak = await cli(['create', 'cli-weak', '--password-stdin'], 'password1');
    assert.equal(weak.code, 1);
    assert.match(weak.err, /commonly used/);
  });

  it('reset-password and disable end the user\'s tokens on the running server at once', async () => {
    const before = await api.login('cli-alice', 'alice from the cli');
    const reset = await cli(['reset-password', 'cli-alice', '--password-stdin'], 'alice new password');
    assert.equal(reset.code, 0, reset.err);
    assert.equal((await api.request('GET', '/v1/me', { token: before.access_token })).status, 401);
    assert.equal((await api.request('POST', '/v1/login', { body: { username: 'cli-alice', password: 'alice from the cli' } })).status, 401);
    const again = await api.login('cli-alice', 'alice new password');
    assert.equal((await cli(['disable', 'cli-alice'])).code, 0);
    assert.equal((await api.request('GET', '/v1/me', { token: again.access_token })).status, 401);
    assert.equal((await api.request('POST', '/v1/login', { body: { username: 'cli-alice', password: 'alice new password' } })).status, 401);
    assert.equal((await cli(['enable', 'cli-alice'])).code, 0);
    await api.login('cli-alice', 'alice new password');
    const list = await cli(['list']);
    assert.match(list.out, /admin +enabled +cli-bob/);
    assert.match(list.out, /user +enabled +cli-alice/);
  });

  it('refuses bad usage (64) and unknown users (1)', async () => {
    for (const args of [[], ['frobnicate'], ['create'], ['create', 'a', 'b'], ['create', 'x', '--role', 'root'], ['list', 'extra'], ['disable', 'x', '--bogus']]) {
      const r = await cli(args);
      assert.equal(r.code, args.length === 0 ? 0 : 64, args.join(' '));
    }
    const r = await cli(['disable', 'nobody-by-that-name']);
    assert.equal(r.code, 1);
    assert.match(r.err, /no user "nobody-by-that-name"/);
  });
});

describe('admin CLI on the embedded store', () => {
  it('works while the server runs on the same data dir; the server sees the change at once', async () => {
    const api = await startApi();
    try {
      const env = { HACKSTREAM_DATA_DIR: api.dataDir, HACKSTREAM_LOG_LEVEL: 'silent' };
      const t = io('emb password one');
      assert.equal(await runAdminCli(['create', 'emb', '--password-stdin'], t, env), 0, t.errors());
      await api.login('emb', 'emb password one');
      await api.gw.app.close();
      const ok = io('emb password two');
      assert.equal(await runAdminCli(['reset-password', 'emb', '--password-stdin'], ok, env), 0, ok.errors());
      await api.restart();
      await api.login('emb', 'emb password two');
    } finally {
      await api.close();
    }
  });
});
