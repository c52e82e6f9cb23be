import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EXIT } from '../../client/errors.js';
import { ADMIN, startApi, type TestApi } from '../helpers/api.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { cleanupSessions, testSessions } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

const scratch = scratchDirs('hs-cli-');
const sessions = testSessions();
const USER = { username: 'cli-user', password: 'Cli-User-Password-42' };
// Access tokens live 2 s (the CLI treats them as dead after 1.5 s): every pause exercises the silent refresh.
const ACCESS_TTL_MS = 2_000;

let api: TestApi;
/** The API certificate's SHA-256 (what scripts may pin) and the CA's (what configure pins). */
let fingerprint: string;
let caFingerprint: string;

function explain(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** A home with the CLI configured against this server (and, optionally, logged in). */
async function home(login?: { username: string; password: string }): Promise<string> {
  const h = scratch();
  const r = await runCli(['configure', '--api-url', `https://${PUBLIC_HOST}:${api.port}`, '--address', '127.0.0.1', '--ca-fingerprint', fingerprint], { home: h });
  assert.equal(r.code, 0, explain(r));
  if (login) {
    const l = await runCli(['login'], { home: h, stdin: `${login.username}\n${login.password}\n` });
    assert.equal(l.code, 0, explain(l));
  }
  return h;
}

const tokensFile = (h: string) => join(h, '.config', 'hackstream', 'tokens.json');
const readTokens = (h: string) => JSON.parse(readFileSync(tokensFile(h), 'utf8')) as { accessToken: string; refreshToken: string; accessExpiresAt: number };

before(async () => {
  api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions }, auth: { accessTtlMs: ACCESS_TTL_MS } });
  fingerprint = new X509Certificate(readFileSync(join(api.dataDir, 'certs', 'api.crt'))).fingerprint256;
  caFingerprint = new X509Certificate(readFileSync(join(api.dataDir, 'certs', 'ca.crt'))).fingerprint256;
  await api.createUser(USER.username, USER.password, { quota: { max_sessions: 1 } });
});

after(async () => {
  await api?.close();
  await cleanupSessions(sessions);
});

describe('hackstream CLI', () => {
  it('bin/hackstream runs from any folder: --version, --help', async () => {
    const bin = new URL('../../bin/hackstream', import.meta.url).pathname;
    const v = await promisify(execFile)(bin, ['--version'], { cwd: scratch() });
    assert.match(v.stdout, /^hackstream \d+\.\d+\.\d+\n$/);
    const h = await promisify(execFile)(bin, ['launch', '--help'], { cwd: scratch() });
    assert.match(h.stdout, /--quality low\|auto\|high/);
  });

  it('configure pins the server CA only when confirmed, and a mismatch is refused', async () => {
    const h = scratch();
    const url = `https://${PUBLIC_HOST}:${api.port}`;
    const noTty = await runCli(['configure', '--api-url', url, '--address', '127.0.0.1'], { home: h });
    assert.equal(noTty.code, EXIT.CA_MISMATCH, explain(noTty));
    assert.ok(noTty.stderr.includes(`SHA-256 fingerprint of the CA HackStream`), noTty.stderr);
    assert.ok(noTty.stderr.includes(caFingerprint), 'shows the CA fingerprint');
    assert.throws(() => statSync(join(h, '.config', 'hackstream', 'config.json')), 'nothing saved');

    const wrong = await runCli(['configure', '--api-url', url, '--address', '127.0.0.1', '--ca-fingerprint', 'AB'.repeat(32)], { home: h });
    assert.equal(wrong.code, EXIT.CA_MISMATCH, explain(wrong));

    const yes = await runCli(['configure', '--api-url', url, '--address', '127.0.0.1', '--yes'], { home: h });
    assert.equal(yes.code, 0, explain(yes));
    const file = join(h, '.config', 'hackstream', 'config.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(h, '.config', 'hackstream')).mode & 0o777, 0o700);
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { fingerprint: string }).fingerprint, caFingerprint);

    // Another server (or a man in the middle) behind the same name: refused before any request.
    writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), fingerprint: 'CD:'.repeat(31) + 'CD' }));
    const mismatch = await runCli(['login'], { home: h, stdin: `${USER.username}\n${USER.password}\n` });
    assert.equal(mismatch.code, EXIT.CA_MISMATCH, explain(mismatch));
    assert.match(mismatch.stderr, /CA mismatch.*hackstream configure again/s);
  });

  it('server unreachable has its own exit code', async () => {
    const h = await home(USER);
    const file = join(h, '.config', 'hackstream', 'config.json');
    writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), api_url: `https://${PUBLIC_HOST}:1` }));
    const r = await runCli(['list'], { home: h });
    assert.equal(r.code, EXIT.UNREACHABLE, explain(r));
    assert.match(r.stderr, /cannot reach the server/);
  });

  it('login: a wrong password is refused with its code; a right one stores tokens 0600 and never prints them', async () => {
    const h = await home();
    const bad = await runCli(['login'], { home: h, stdin: `${USER.username}\nnot-the-password\n` });
    assert.equal(bad.code, EXIT.AUTH, explain(bad));
    assert.match(bad.stderr, /wrong username or password/);

    const ok = await runCli(['login'], { home: h, stdin: `${USER.username}\n${USER.password}\n` });
    assert.equal(ok.code, 0, explain(ok));
    assert.equal(statSync(tokensFile(h)).mode & 0o777, 0o600);
    const t = readTokens(h);
    for (const secret of [t.accessToken, t.refreshToken, USER.password]) assert.ok(!ok.stdout.includes(secret) && !ok.stderr.includes(secret));
  });

  it('an expired access token is refreshed silently; a dead refresh token asks for the password again', async () => {
    const h = await home(USER);
    const before = readTokens(h);
    await new Promise((r) => setTimeout(r, ACCESS_TTL_MS + 200));
    const r = await runCli(['list', '--json'], { home: h });
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(JSON.parse(r.stdout), []);
    const after = readTokens(h);
    assert.notEqual(after.refreshToken, before.refreshToken, 'the refresh token rotated');
    assert.ok(!r.stderr.includes(after.accessToken) && !r.stdout.includes(after.refreshToken));

    // Kill the refresh token: the next command prompts (stdin here) and carries on.
    writeFileSync(tokensFile(h), JSON.stringify({ ...after, accessExpiresAt: 0, refreshToken: 'hsr_dead' }));
    const noCreds = await runCli(['list'], { home: h });
    assert.equal(noCreds.code, EXIT.AUTH, explain(noCreds));
    writeFileSync(tokensFile(h), JSON.stringify({ ...after, accessExpiresAt: 0, refreshToken: 'hsr_dead' }));
    const again = await runCli(['list'], { home: h, stdin: `${USER.username}\n${USER.password}\n` });
    assert.equal(again.code, 0, explain(again));
    assert.match(again.stdout, /No sessions/);
  });

  it('launch --no-attach, list, quota reached, attach without xpra, stop', { timeout: 120_000 }, async () => {
    const h = await home(USER);
    const launched = await runCli(['launch', 'browser', '--url', 'https://example.org/cli', '--no-attach'], { home: h, timeoutMs: 90_000 });
    assert.equal(launched.code, 0, explain(launched));
    const id = launched.stdout.trim();
    assert.match(id, /^[0-9a-f-]{36}$/);
    try {
      const list = await runCli(['list', '--json'], { home: h });
      assert.equal(list.code, 0, explain(list));
      const items = JSON.parse(list.stdout) as Array<{ session_id: string; state: string; url: string; quality: string }>;
      assert.equal(items.length, 1);
      assert.deepEqual([items[0]?.session_id, items[0]?.url, items[0]?.quality], [id, 'https://example.org/cli', 'low']);
      assert.ok(!list.stdout.includes('token'), 'no connect token in the list');
      const table = await runCli(['list'], { home: h });
      assert.match(table.stdout, new RegExp(`^ID +STATE.*\\n${id} +ready`, 's'));

      const second = await runCli(['launch', 'browser', '--no-attach'], { home: h, timeoutMs: 90_000 });
      assert.equal(second.code, EXIT.QUOTA, explain(second));
      assert.match(second.stderr, /quota reached/);

      const noXpra = await runCli(['attach', id], { home: h, env: { HACKSTREAM_XPRA: join(scratch(), 'xpra') } });
      assert.equal(noXpra.code, EXIT.XPRA_MISSING, explain(noXpra));
      assert.match(noXpra.stderr, /sudo apt-get install xpra python3-gi-cairo/);
    } finally {
      const stop = await runCli(['stop', id], { home: h });
      assert.equal(stop.code, 0, explain(stop));
      assert.match(stop.stderr, /is stopped/);
    }
    const gone = await runCli(['attach', id], { home: h });
    assert.equal(gone.code, EXIT.SESSION_GONE, explain(gone));
  });

  it('admin users create, role, quota, disable map onto the admin API', async () => {
    const h = await home(ADMIN);
    const create = await runCli(['admin', 'users', 'create', 'cli-made'], { home: h, stdin: 'Made-By-The-Cli-9\n' });
    assert.equal(create.code, 0, explain(create));
    assert.match(create.stdout, /^cli-made\t[0-9a-f-]+\tuser\tactive/);
    assert.equal((await runCli(['admin', 'users', 'role', 'cli-made', 'admin'], { home: h })).code, 0);
    const quota = await runCli(['admin', 'users', 'quota', 'cli-made', '--max-sessions', '3'], { home: h });
    assert.equal(quota.code, 0, explain(quota));
    assert.match(quota.stdout, /\tadmin\tactive\t.*"max_sessions":3/);
    const disable = await runCli(['admin', 'users', 'disable', 'cli-made'], { home: h });
    assert.match(disable.stdout, /\tdisabled\t/);
    const login = await runCli(['login'], { home: await home(), stdin: 'cli-made\nMade-By-The-Cli-9\n' });
    assert.equal(login.code, EXIT.AUTH, explain(login));
  });

  it('logout revokes on the server and removes the tokens', async () => {
    const h = await home(USER);
    const { refreshToken } = readTokens(h);
    const r = await runCli(['logout'], { home: h });
    assert.equal(r.code, 0, explain(r));
    assert.throws(() => statSync(tokensFile(h)));
    const refresh = await api.request('POST', '/v1/token/refresh', { body: { refresh_token: refreshToken } });
    assert.equal(refresh.status, 401);
    const list = await runCli(['list'], { home: h });
    assert.equal(list.code, EXIT.AUTH, explain(list));
  });

  // Last: it restarts the server with a new API certificate.
  it('a pinned CA keeps trusting a re-issued API certificate; a pinned API certificate does not', async () => {
    const byCa = scratch();
    const url = `https://${PUBLIC_HOST}:${api.port}`;
    assert.equal((await runCli(['configure', '--api-url', url, '--address', '127.0.0.1', '--ca-fingerprint', caFingerprint], { home: byCa })).code, 0);
    const byLeaf = await home(USER);
    const l = await runCli(['login'], { home: byCa, stdin: `${USER.username}\n${USER.password}\n` });
    assert.equal(l.code, 0, explain(l));

    rmSync(join(api.dataDir, 'certs', 'api.crt'));
    rmSync(join(api.dataDir, 'certs', 'api.key'));
    await api.restart();
    const renewed = new X509Certificate(readFileSync(join(api.dataDir, 'certs', 'api.crt'))).fingerprint256;
    assert.notEqual(renewed, fingerprint, 'a new API certificate');
    for (const h of [byCa, byLeaf]) {
      const file = join(h, '.config', 'hackstream', 'config.json');
      writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), api_url: `https://${PUBLIC_HOST}:${api.port}` }));
    }
    const ok = await runCli(['list'], { home: byCa });
    assert.equal(ok.code, 0, explain(ok));
    const refused = await runCli(['list'], { home: byLeaf });
    assert.equal(refused.code, EXIT.CA_MISMATCH, explain(refused));
    assert.match(refused.stderr, /none of the certificates it presented .* is the pinned/);
  });
});
