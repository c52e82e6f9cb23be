import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, it } from 'node:test';
import plugin from '../../plugins/auth-ldap/index.js';
import { escapeDnValue, escapeFilterValue, fillTemplate, normalizeDn } from '../../plugins/auth-ldap/escape.js';
import { DEFAULT_USER_DN, optionsSchema } from '../../plugins/auth-ldap/options.js';
import { formatGuid } from '../../plugins/auth-ldap/provider.js';
import type { AuthProvider, PluginContext, PluginRegistrar, PluginStorage } from '../../core/plugin/contract.js';
import { unavailableServices } from '../../core/plugin/services.js';
import { silentLogger } from '../../lib/log.js';
import { scratchDirs } from '../helpers/tmp.js';

const newDir = scratchDirs('hs-ldap-unit-');

describe('auth-ldap escaping', () => {
  const filterCases = [
    { what: 'a plain name stays', input: 'alice', out: 'alice' },
    { what: 'an injection attempt becomes a literal value', input: '*)(uid=*', out: '\\2a\\29\\28uid=\\2a' },
    { what: 'a backslash is escaped first, once', input: 'a\\2a', out: 'a\\5c2a' },
    { what: 'NUL', input: 'a\0b', out: 'a\\00b' },
    { what: 'non-ASCII stays UTF-8', input: 'jörg', out: 'jörg' },
  ];
  for (const c of filterCases) it(`filter value: ${c.what}`, () => assert.equal(escapeFilterValue(c.input), c.out));

  const dnCases = [
    { what: 'a plain name stays', input: 'alice', out: 'alice' },
    { what: 'RDN syntax is escaped', input: 'a,ou=admins+cn="x";<y>\\', out: 'a\\,ou\\=admins\\+cn\\=\\"x\\"\\;\\<y\\>\\\\' },
    { what: 'leading space and hash, trailing space', input: ' #a ', out: '\\ #a\\ ' },
    { what: 'a leading hash', input: '#a', out: '\\#a' },
    { what: 'a single space', input: ' ', out: '\\ ' },
    { what: 'NUL', input: 'a\0', out: 'a\\00' },
  ];
  for (const c of dnCases) it(`DN value: ${c.what}`, () => assert.equal(escapeDnValue(c.input), c.out));

  it('fills only the named placeholders, each escaped', () => {
    assert.equal(fillTemplate('(&(member={dn})(x={other}))', { dn: 'cn=a*' }, escapeFilterValue), '(&(member=cn=a\\2a)(x={other}))');
    assert.equal(fillTemplate('{username}{username}', { username: '(' }, escapeFilterValue), '\\28\\28');
  });

  it('formats an AD objectGUID with its first three groups little-endian', () => {
    assert.equal(formatGuid(Buffer.from('a52bede05f3d4c4f9dd4f1d6a6b5ac5b', 'hex')), 'e0ed2ba5-3d5f-4f4c-9dd4-f1d6a6b5ac5b');
  });

  it('normalises DNs for group comparison', () => {
    assert.equal(normalizeDn(' CN=HackStream Admins, OU=Groups ,DC=corp '), 'cn=hackstream admins,ou=groups,dc=corp');
    assert.notEqual(normalizeDn('cn=a\\,b,dc=x'), normalizeDn('cn=a,b,dc=x'));
  });
});

describe('auth-ldap options', () => {
  const base = { url: 'ldaps://ldap.example.org' };
  const search = { base: 'ou=people,dc=example,dc=org', bindDn: 'cn=reader,dc=example,dc=org', bindPassword: 'pw' };
  const refused: { what: string; input: Record<string, unknown>; path: string; message: RegExp }[] = [
    { what: 'plain ldap:// without StartTLS', input: { url: 'ldap://ldap.example.org' }, path: 'url', message: /clear text.*startTls: true.*allowInsecure/ },
    { what: 'StartTLS on ldaps://', input: { ...base, startTls: true }, path: 'startTls', message: /already TLS/ },
    { what: 'another scheme', input: { url: 'https://ldap.example.org' }, path: 'url', message: /ldaps:\/\/ or ldap:\/\// },
    { what: 'not a URL', input: { url: 'ldap.example.org' }, path: 'url', message: /not a URL/ },
    { what: 'credentials in the URL', input: { url: 'ldaps://u:p@ldap.example.org' }, path: 'url', message: /only scheme, host and port/ },
    { what: 'a base DN in the URL', input: { url: 'ldaps://ldap.example.org/dc=example' }, path: 'url', message: /only scheme, host and port/ },
    { what: 'a DN template without {username}', input: { ...base, userDn: 'uid=alice,dc=x' }, path: 'userDn', message: /\{username\}/ },
    { what: 'a filter without {username}', input: { ...base, search: { ...search, filter: '(uid=*)' } }, path: 'search.filter', message: /\{username\}/ },
    { what: 'a filter without parentheses', input: { ...base, search: { ...search, filter: 'uid={username}' } }, path: 'search.filter', message: /parenthesised/ },
    { what: 'both service passwords', input: { ...base, search: { ...search, bindPasswordFile: '/x' } }, path: 'search.bindPasswordFile', message: /not both/ },
    { what: 'a service DN without password', input: { ...base, search: { base: 'dc=x', bindDn: 'cn=r' } }, path: 'search.bindDn', message: /needs bindPassword/ },
    { what: 'a service password without DN', input: { ...base, search: { base: 'dc=x', bindPassword: 'pw' } }, path: 'search.bindDn', message: /needs its bindDn/ },
    { what: 'userDn with a service account', input: { ...base, userDn: 'uid={username},dc=x', search }, path: 'search.bindDn', message: /runs as the user/ },
    { what: 'a group filter without placeholder', input: { ...base, groupSearch: { base: 'dc=x', filter: '(cn=*)' } }, path: 'groupSearch.filter', message: /\{dn\} or \{username\}/ },
    { what: 'an attribute name that is filter syntax', input: { ...base, usernameAttribute: 'uid)(x' }, path: 'usernameAttribute', message: /attribute/ },
    { what: 'a timeout of zero', input: { ...base, timeoutMs: 0 }, path: 'timeoutMs', message: /100/ },
    { what: 'an unknown role', input: { ...base, groups: { owner: ['cn=x'] } }, path: 'groups', message: /owner/ },
    { what: 'unknown keys', input: { ...base, password: 'x' }, path: '', message: /password/ },
    { what: 'unknownUser other than skip/deny', input: { ...base, unknownUser: 'ok' }, path: 'unknownUser', message: /skip/ },
  ];
  for (const c of refused) {
    it(`refuses ${c.what}`, () => {
      const r = optionsSchema.safeParse(c.input);
      assert.equal(r.success, false);
      const issue = r.error?.issues.find((i) => i.path.join('.') === c.path);
      assert.ok(issue, `an issue at "${c.path}": ${JSON.stringify(r.error?.issues)}`);
      assert.match(issue.message + JSON.stringify(issue), c.message);
    });
  }

  it('accepts plain LDAP only when told so, and StartTLS on ldap://', () => {
    assert.equal(optionsSchema.safeParse({ url: 'ldap://ldap.example.org', allowInsecure: true }).success, true);
    assert.equal(optionsSchema.safeParse({ url: 'ldap://ldap.example.org:389', startTls: true }).success, true);
  });

  it('fills in defaults: LDAPS, a few seconds of timeouts, skip unknown users, role user', () => {
    const o = optionsSchema.parse({});
    assert.equal(o.url, 'ldaps://localhost');
    assert.equal(o.userDn, DEFAULT_USER_DN);
    assert.deepEqual([o.connectTimeoutMs, o.timeoutMs, o.unknownUser], [3_000, 4_000, 'skip']);
    assert.deepEqual(o.groups, { admin: [] });
    assert.equal(o.requireGroup, undefined);
    const s = optionsSchema.parse({ search: { base: 'dc=x' }, requireGroup: 'cn=g,dc=x' });
    assert.equal(s.userDn, undefined, 'a search replaces the default template');
    assert.deepEqual(s.requireGroup, ['cn=g,dc=x']);
    assert.equal(s.search?.filter, '(uid={username})');
  });

  it('the example config (Active Directory) validates; an empty object is enough; unknown options are refused', () => {
    assert.equal(optionsSchema.safeParse(plugin.exampleConfig).success, true);
    assert.equal(plugin.configSchema.safeParse({}).success, true);
    assert.equal(plugin.configSchema.safeParse({ noSuchOption: 1 }).success, false);
    assert.equal(plugin.contract, 2);
    assert.equal(plugin.name, 'auth-ldap');
  });
});

/** Runs init with a registrar that keeps the provider; the rest of the context fails if used. */
async function init(input: unknown): Promise<{ provider: AuthProvider | undefined; close: () => Promise<void> }> {
  let provider: AuthProvider | undefined;
  const refuse = () => {
    throw new Error('not expected');
  };
  const register: PluginRegistrar = {
    authProvider: (p) => void (provider = p),
    quotaPolicy: refuse,
    httpRoutes: refuse,
    auditSink: refuse,
    sessionEvents: refuse,
    redirectFlow: refuse,
    deviceFlow: refuse,
    secondFactor: refuse,
  };
  const storage = { sql: { query: refuse, transaction: refuse }, kv: { get: refuse, set: refuse, setIfAbsent: refuse, delete: refuse } } as unknown as PluginStorage;
  const ctx: PluginContext<ReturnType<typeof optionsSchema.parse>> = {
    logger: silentLogger(),
    config: optionsSchema.parse(input),
    register,
    services: unavailableServices(),
    storage,
  };
  const handle = await plugin.init(ctx);
  return { provider, close: async () => handle?.close() };
}

describe('auth-ldap init', () => {
  it('with the example config: registers a provider, holds nothing open, closes', async () => {
    const before = process.getActiveResourcesInfo().length;
    const { provider, close } = await init(plugin.exampleConfig);
    assert.ok(provider, 'an auth provider is registered');
    await close();
    await tick();
    assert.equal(process.getActiveResourcesInfo().length, before);
  });

  it('refuses an empty password before any connection (no directory at this address)', async () => {
    const { provider, close } = await init({ url: 'ldaps://127.0.0.1:1', connectTimeoutMs: 100, timeoutMs: 100 });
    assert.deepEqual(await provider?.authenticate({ username: 'alice', password: '', ip: '127.0.0.1' }), { result: 'deny', reason: 'empty-password' });
    await close();
  });

  const files = [
    { what: 'a missing CA file', options: (d: string) => ({ caFile: join(d, 'nope.pem') }), message: /caFile .*nope\.pem cannot be read \(ENOENT\)/ },
    { what: 'a CA file without a certificate', options: (d: string) => ({ caFile: join(d, 'empty.pem') }), message: /holds no PEM certificate/ },
    {
      what: 'a missing service password file',
      options: (d: string) => ({ search: { base: 'dc=x', bindDn: 'cn=r,dc=x', bindPasswordFile: join(d, 'nope') } }),
      message: /search\.bindPasswordFile .*nope cannot be read/,
    },
    {
      what: 'an empty service password file',
      options: (d: string) => ({ search: { base: 'dc=x', bindDn: 'cn=r,dc=x', bindPasswordFile: join(d, 'empty.pem') } }),
      message: /is empty/,
    },
  ];
  for (const c of files) {
    it(`fails start-up on ${c.what}, naming the option`, async () => {
      const dir = newDir();
      writeFileSync(join(dir, 'empty.pem'), '\n');
      await assert.rejects(init(c.options(dir)), c.message);
    });
  }
});
