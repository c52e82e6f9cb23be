import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import plugin from '../../plugins/auth-ldap/index.js';
import { optionsSchema } from '../../plugins/auth-ldap/options.js';
import type { AuthAnswer, AuthProvider, PluginContext, PluginRegistrar, PluginStorage } from '../../core/plugin/contract.js';
import { loadPlugins } from '../../core/plugin/loader.js';
import { unavailableServices } from '../../core/plugin/services.js';
import { capturingLogger } from '../fixtures/plugins/harness.js';
import { ADMIN, errorCode, startApi, type TestApi, type TokenPair } from '../helpers/api.js';
import { ADMINS_GROUP, LDAP_BASE, LDAP_PASSWORDS, LDAP_READER, LDAP_ROOT, startSlapd, USERS_GROUP, type TestSlapd } from '../helpers/slapd.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * auth-ldap against the test's own slapd (test/helpers/slapd.ts): first the provider the
 * plugin registers, case by case; then through the real server (gateway, API, provisioning).
 */

const newDir = scratchDirs('hs-ldap-it-');
const PEOPLE = `ou=people,${LDAP_BASE}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SECRETS = [...Object.values(LDAP_PASSWORDS), LDAP_READER.password, LDAP_ROOT.password];
const ip = '127.0.0.1';

let slapd: TestSlapd;
before(async () => {
  slapd = await startSlapd();
});
after(async () => {
  await slapd?.stop();
});

/** Options for a search through the service account over LDAPS; `over` replaces keys. */
function searchOptions(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    url: slapd.ldapsUrl,
    caFile: slapd.caFile,
    search: { base: PEOPLE, bindDn: LDAP_READER.dn, bindPassword: LDAP_READER.password },
    groups: { admin: [ADMINS_GROUP] },
    ...over,
  };
}

/** The plugin's provider, initialised as the host would (the rest of the context fails if used), with its log lines. */
async function provider(input: Record<string, unknown>): Promise<{ auth: (u: string, p: string) => Promise<AuthAnswer>; lines: Record<string, unknown>[] }> {
  let registered: AuthProvider | undefined;
  const refuse = () => {
    throw new Error('not expected');
  };
  const register: PluginRegistrar = {
    authProvider: (p) => void (registered = p),
    ...{ quotaPolicy: refuse, httpRoutes: refuse, auditSink: refuse, sessionEvents: refuse, redirectFlow: refuse, deviceFlow: refuse, secondFactor: refuse },
  };
  const storage = { sql: { query: refuse, transaction: refuse }, kv: { get: refuse, set: refuse, setIfAbsent: refuse, delete: refuse } } as unknown as PluginStorage;
  const { logger, lines } = capturingLogger();
  const ctx: PluginContext<ReturnType<typeof optionsSchema.parse>> = { logger, config: optionsSchema.parse(input), register, services: unavailableServices(), storage };
  const handle = await plugin.init(ctx);
  after(() => handle?.close());
  const p = registered;
  assert.ok(p);
  return { auth: (username, password) => p.authenticate({ username, password, ip }), lines };
}

const ok = (username: string, role: 'admin' | 'user') => ({ result: 'ok', identity: { username, role, source: 'ldap' } });
/** The answer without the subject (checked separately). */
function strip(a: AuthAnswer): unknown {
  if (a.result === 'ok' && 'identity' in a) return { result: 'ok', identity: { username: a.identity.username, role: a.identity.role, source: a.identity.source } };
  return a;
}

describe('auth-ldap provider against slapd', () => {
  const cases: { what: string; options: () => Record<string, unknown>; username: string; password: string; expect: unknown; logged?: RegExp }[] = [
    { what: 'LDAPS search: an admin-group member is admin', options: () => searchOptions(), username: 'alice', password: LDAP_PASSWORDS.alice, expect: ok('alice', 'admin') },
    { what: 'the username comes from uid, lower-cased', options: () => searchOptions(), username: 'BOB', password: LDAP_PASSWORDS.Bob, expect: ok('bob', 'user') },
    { what: 'wrong password', options: () => searchOptions(), username: 'alice', password: LDAP_PASSWORDS.Bob, expect: { result: 'deny', reason: 'wrong-password' } },
    { what: 'unknown user → skip (default)', options: () => searchOptions(), username: 'nobody', password: 'x-y-z', expect: { result: 'skip' } },
    { what: 'unknown user → deny when configured', options: () => searchOptions({ unknownUser: 'deny' }), username: 'nobody', password: 'x', expect: { result: 'deny', reason: 'unknown-user' } },
    { what: 'empty password', options: () => searchOptions(), username: 'alice', password: '', expect: { result: 'deny', reason: 'empty-password' } },
    { what: 'filter injection *)(uid=*', options: () => searchOptions(), username: '*)(uid=*', password: LDAP_PASSWORDS.alice, expect: { result: 'skip' } },
    { what: 'filter injection *', options: () => searchOptions(), username: '*', password: LDAP_PASSWORDS.alice, expect: { result: 'skip' } },
    { what: 'filter injection alice)(|(uid=*', options: () => searchOptions(), username: 'alice)(|(uid=*', password: LDAP_PASSWORDS.alice, expect: { result: 'skip' } },
    { what: 'a uid that is no HackStream username', options: () => searchOptions(), username: 'x y', password: LDAP_PASSWORDS['x y'], expect: { result: 'deny', reason: 'invalid-username' } },
    {
      what: 'a filter matching several entries',
      options: () => searchOptions({ search: { base: PEOPLE, bindDn: LDAP_READER.dn, bindPassword: LDAP_READER.password, filter: '(|(uid={username})(objectClass=inetOrgPerson))' } }),
      username: 'alice',
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'ambiguous-user' },
    },
    {
      what: 'StartTLS with a group search',
      options: () => searchOptions({ url: slapd.ldapUrl, startTls: true, groupSearch: { base: `ou=groups,${LDAP_BASE}` } }),
      username: 'alice',
      password: LDAP_PASSWORDS.alice,
      expect: ok('alice', 'admin'),
    },
    {
      // The test slapd refuses simple binds without TLS: this shows StartTLS above really bound over TLS.
      what: 'plain LDAP when allowed: the bind goes out unencrypted (this slapd refuses that)',
      options: () => searchOptions({ url: slapd.ldapUrl, allowInsecure: true }),
      username: 'alice',
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'directory-unavailable' },
      logged: /confidentiality required/i,
    },
    {
      what: 'DN template',
      options: () => ({ url: slapd.ldapsUrl, caFile: slapd.caFile, userDn: `uid={username},${PEOPLE}`, groups: { admin: [ADMINS_GROUP] } }),
      username: 'carol',
      password: LDAP_PASSWORDS.carol,
      expect: ok('carol', 'user'),
    },
    {
      what: 'DN template, wrong password',
      options: () => ({ url: slapd.ldapsUrl, caFile: slapd.caFile, userDn: `uid={username},${PEOPLE}` }),
      username: 'carol',
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'invalid-credentials' },
    },
    {
      what: 'DN template injection stays a value',
      options: () => ({ url: slapd.ldapsUrl, caFile: slapd.caFile, userDn: `uid={username},${PEOPLE}` }),
      username: `alice,${PEOPLE}`,
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'invalid-credentials' },
    },
    {
      what: 'requireGroup refuses a non-member',
      options: () => searchOptions({ requireGroup: [USERS_GROUP, ADMINS_GROUP] }),
      username: 'carol',
      password: LDAP_PASSWORDS.carol,
      expect: { result: 'deny', reason: 'not-in-required-group' },
    },
    { what: 'requireGroup admits a member', options: () => searchOptions({ requireGroup: USERS_GROUP.toUpperCase() }), username: 'bob', password: LDAP_PASSWORDS.Bob, expect: ok('bob', 'user') },
    {
      what: 'a CA that did not sign the server certificate',
      options: () => searchOptions({ caFile: slapd.otherCaFile }),
      username: 'alice',
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'directory-unavailable' },
      logged: /certificate/,
    },
    {
      what: 'the right CA, but an address the certificate does not name',
      options: () => searchOptions({ url: slapd.mismatchUrl }),
      username: 'alice',
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'directory-unavailable' },
      logged: /does not match certificate's altnames/,
    },
    {
      what: 'no CA file: Node’s bundled CAs do not know the test CA',
      options: () => searchOptions({ caFile: undefined }),
      username: 'alice',
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'directory-unavailable' },
    },
    {
      what: 'a refused service account',
      options: () => searchOptions({ search: { base: PEOPLE, bindDn: LDAP_READER.dn, bindPassword: 'not-the-reader-password' } }),
      username: 'alice',
      password: LDAP_PASSWORDS.alice,
      expect: { result: 'deny', reason: 'directory-unavailable' },
    },
  ];
  for (const c of cases) {
    it(c.what, async () => {
      const { auth, lines } = await provider(c.options());
      const answer = await auth(c.username, c.password);
      assert.deepEqual(strip(answer), c.expect);
      if (answer.result === 'ok' && 'identity' in answer) assert.match(answer.identity.subject, UUID, 'the subject is the entryUUID');
      const logged = JSON.stringify(lines);
      if (c.logged) assert.match(logged, c.logged);
      for (const s of [...SECRETS, 'not-the-reader-password']) assert.ok(!logged.includes(s), `no password in the logs: ${logged}`);
    });
  }

  it('the subject falls back to the DN without the attribute; a refused service account is logged as such', async () => {
    const { auth } = await provider(searchOptions({ subjectAttribute: 'employeeNumber' }));
    const a = await auth('alice', LDAP_PASSWORDS.alice);
    assert.ok(a.result === 'ok' && 'identity' in a);
    assert.equal(a.identity.subject, `uid=alice,${PEOPLE}`);
    const refused = await provider(searchOptions({ search: { base: PEOPLE, bindDn: LDAP_READER.dn, bindPassword: 'wrong-reader-pw' } }));
    await refused.auth('alice', LDAP_PASSWORDS.alice);
    assert.match(JSON.stringify(refused.lines), /service account \(search.bindDn\) was refused/);
  });

  it('a frozen server (accepts, never answers) denies within the timeouts, LDAPS and StartTLS', async () => {
    const fast = { connectTimeoutMs: 300, timeoutMs: 400 };
    const ldaps = await provider(searchOptions(fast));
    const startTls = await provider(searchOptions({ ...fast, url: slapd.ldapUrl, startTls: true }));
    slapd.freeze();
    try {
      for (const p of [ldaps, startTls]) {
        const t0 = Date.now();
        assert.deepEqual(await p.auth('alice', LDAP_PASSWORDS.alice), { result: 'deny', reason: 'directory-unavailable' });
        assert.ok(Date.now() - t0 < 1_500, `denied after ${Date.now() - t0} ms`);
      }
    } finally {
      slapd.thaw();
    }
    assert.deepEqual(strip(await ldaps.auth('alice', LDAP_PASSWORDS.alice)), ok('alice', 'admin'), 'answers again once thawed');
  });
});

describe('auth-ldap through the server', () => {
  let api: TestApi;
  const tokens: string[] = [];
  const login = (username: string, password: string) => api.request('POST', '/v1/login', { body: { username, password } });

  before(async () => {
    const dir = newDir();
    const passwordFile = join(dir, 'reader-password');
    writeFileSync(passwordFile, `${LDAP_READER.password}\n`, { mode: 0o600 });
    const ldap = {
      url: slapd.ldapsUrl,
      caFile: slapd.caFile,
      connectTimeoutMs: 800,
      timeoutMs: 1_200,
      search: { base: PEOPLE, bindDn: LDAP_READER.dn, bindPasswordFile: passwordFile },
      groups: { admin: [ADMINS_GROUP] },
    };
    api = await startApi({
      captureLogs: true,
      auth: { throttle: { accountShortLimit: 1_000, accountLongLimit: 1_000, ipFailLimit: 1_000 } },
      config: { plugins: { 'auth-ldap': ldap, 'auth-local': {}, 'quota-default': {} } },
    });
  });
  after(async () => {
    await api?.close();
  });

  it('a directory login provisions the account with the role from its group; local accounts still log in', async () => {
    const r = await login('alice', LDAP_PASSWORDS.alice);
    assert.equal(r.status, 200, r.text);
    const pair = r.json as TokenPair;
    tokens.push(pair.access_token, pair.refresh_token);
    const me = (await api.request('GET', '/v1/me', { token: pair.access_token })).json as { username: string; role: string; disabled: boolean };
    assert.deepEqual([me.username, me.role, me.disabled], ['alice', 'admin', false]);
    const bob = await login('Bob', LDAP_PASSWORDS.Bob);
    assert.equal(bob.status, 200, bob.text);
    tokens.push((bob.json as TokenPair).access_token);
    assert.equal(((await api.request('GET', '/v1/me', { token: (bob.json as TokenPair).access_token })).json as { role: string }).role, 'user');
    assert.equal((await login(ADMIN.username, ADMIN.password)).status, 200, 'unknown to the directory: auth-local answers');
  });

  it('the account is audited as provisioned from ldap; the role follows the directory groups on every login', async () => {
    const r = await api.request('GET', '/v1/audit?action=user_created', { token: await api.adminToken() });
    assert.equal(r.status, 200, r.text);
    const rows = (r.json as { items: { details: Record<string, unknown> }[] }).items.filter((i) => i.details.username === 'alice');
    assert.equal(rows.length, 1, 'created once');
    assert.equal(rows[0]?.details.source, 'ldap');
    assert.match(String(rows[0]?.details.subject), UUID, 'with the entryUUID');

    // groupOfNames needs a member: the group is handed to Bob and back.
    const members = (uid: string) => `dn: ${ADMINS_GROUP}\nchangetype: modify\nreplace: member\nmember: uid=${uid},${PEOPLE}\n`;
    await slapd.modify(members('Bob'));
    const after1 = await login('alice', LDAP_PASSWORDS.alice);
    assert.equal(after1.status, 200, after1.text);
    assert.equal(((await api.request('GET', '/v1/me', { token: (after1.json as TokenPair).access_token })).json as { role: string }).role, 'user');
    await slapd.modify(members('alice'));
    const after2 = await login('alice', LDAP_PASSWORDS.alice);
    assert.equal(((await api.request('GET', '/v1/me', { token: (after2.json as TokenPair).access_token })).json as { role: string }).role, 'admin');
    tokens.push(...[after1, after2].map((x) => (x.json as TokenPair).access_token));
  });

  it('wrong password, unknown user, filter injection: 401; an empty password never reaches a provider', async () => {
    const refusals = await Promise.all([login('alice', LDAP_PASSWORDS.Bob), login('nobody', 'whatever-1'), login('*)(uid=*', LDAP_PASSWORDS.alice), login('*', LDAP_PASSWORDS.alice)]);
    for (const r of refusals) {
      assert.equal(r.status, 401, r.text);
      assert.equal(errorCode(r), 'AUTH_INVALID_CREDENTIALS');
    }
    const empty = await login('alice', '');
    assert.equal(empty.status, 400, empty.text);
  });

  it('an account disabled in HackStream stays refused with the right directory password', async () => {
    const first = await login('carol', LDAP_PASSWORDS.carol);
    assert.equal(first.status, 200, first.text);
    const me = (await api.request('GET', '/v1/me', { token: (first.json as TokenPair).access_token })).json as { id: string };
    const patch = await api.request('PATCH', `/v1/users/${me.id}`, { token: await api.adminToken(), body: { disabled: true } });
    assert.equal(patch.status, 200, patch.text);
    const again = await login('carol', LDAP_PASSWORDS.carol);
    assert.equal(again.status, 401, again.text);
    assert.equal(errorCode(again), 'AUTH_INVALID_CREDENTIALS');
  });

  it('a name both local and in the directory: no takeover, and the directory (listed first) refuses the local password too', async () => {
    const local = 'dave-local-pass-6';
    tokens.push(local);
    await api.createUser('dave', local);
    for (const password of [LDAP_PASSWORDS.dave, local]) {
      const r = await login('dave', password);
      assert.equal(r.status, 401, r.text);
      assert.equal(errorCode(r), 'AUTH_INVALID_CREDENTIALS');
    }
    const r = await api.request('GET', '/v1/audit?action=authn_login_fail', { token: await api.adminToken() });
    const reasons = (r.json as { items: { target: string | null; details: Record<string, unknown> }[] }).items.filter((i) => i.target === 'dave').map((i) => i.details.reason);
    assert.deepEqual(reasons.sort(), ['account-owned-elsewhere', 'wrong-password']);
  });

  it('the directory slow or down: logins fail closed quickly with 401, /health stays 200', async () => {
    const timed = async () => {
      const t0 = Date.now();
      const [r, health] = await Promise.all([login('alice', LDAP_PASSWORDS.alice), api.request('GET', '/health')]);
      return { r, health, ms: Date.now() - t0 };
    };
    slapd.freeze();
    let slow;
    try {
      slow = await timed();
    } finally {
      slapd.thaw();
    }
    await slapd.kill();
    const down = await timed();
    await slapd.restart();
    for (const [what, t] of [['slow', slow], ['down', down]] as const) {
      assert.equal(t.r.status, 401, `${what}: ${t.r.text}`);
      assert.equal(errorCode(t.r), 'AUTH_INVALID_CREDENTIALS');
      assert.equal(t.health.status, 200, `${what}: /health`);
      assert.ok(t.ms < 3_000, `${what}: answered after ${t.ms} ms`);
    }
    assert.equal((await login('alice', LDAP_PASSWORDS.alice)).status, 200, 'logins work again once the directory is back');
  });

  it('no password or token reaches the logs', () => {
    const logged = api.logs.join('\n');
    assert.ok(logged.includes('auth-ldap'), 'the plugin did log');
    for (const s of [...SECRETS, ADMIN.password, ...tokens]) assert.ok(!logged.includes(s), `a secret in the logs: ${s.slice(0, 4)}…`);
  });

  it('plain ldap:// is refused at start unless allowInsecure', async () => {
    const plain = { url: slapd.ldapUrl, search: { base: PEOPLE } };
    await assert.rejects(startApi({ config: { plugins: { 'auth-ldap': plain, 'auth-local': {}, 'quota-default': {} } } }), (err: Error) => {
      assert.match(String(err), /auth-ldap/);
      assert.match(String(err), /clear text/);
      return true;
    });
    // Allowed, the same options pass the real loader (the server start itself is the case above).
    const [loaded] = await loadPlugins({ 'auth-ldap': { ...plain, allowInsecure: true } });
    assert.equal(loaded?.plugin.name, 'auth-ldap');
  });
});
