import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { identityOf } from '../../plugins/auth-oidc/identity.js';
import { readSecrets } from '../../plugins/auth-oidc/issuer.js';
import { issuerSchema, optionsSchema } from '../../plugins/auth-oidc/options.js';
import { scratchDirs } from '../helpers/tmp.js';

const scratch = scratchDirs('hs-oidc-opts-');
const base = { issuer: 'https://sso.example.org/realms/x', clientId: 'hackstream', clientSecret: 's' };
const issuer = (extra: Record<string, unknown> = {}) => issuerSchema.parse({ ...base, ...extra });

describe('auth-oidc options', () => {
  const refused: { what: string; input: unknown; path: string }[] = [
    { what: 'an http issuer', input: { issuers: { a: { ...base, issuer: 'http://sso.example.org' } } }, path: 'issuers.a.issuer' },
    { what: 'both secrets', input: { issuers: { a: { ...base, clientSecretFile: '/x' } } }, path: 'issuers.a.clientSecret' },
    { what: 'no secret', input: { issuers: { a: { issuer: base.issuer, clientId: 'c' } } }, path: 'issuers.a.clientSecret' },
    { what: 'scopes without openid', input: { issuers: { a: { ...base, scopes: ['profile'] } } }, path: 'issuers.a.scopes' },
    { what: 'a roleMap without roleClaim', input: { issuers: { a: { ...base, roleMap: { x: 'admin' } } } }, path: 'issuers.a.roleMap' },
    { what: 'a role that is not admin or user', input: { issuers: { a: { ...base, roleClaim: 'g', roleMap: { x: 'root' } } } }, path: 'issuers.a.roleMap.x' },
    { what: 'a key that is not a flow id', input: { issuers: { 'Key Cloak': base } }, path: 'issuers.Key Cloak' },
    { what: 'an unknown option', input: { issuers: { a: { ...base, clientSecrte: 'typo' } } }, path: 'issuers.a' },
    { what: 'an unknown top-level option', input: { issuer: base.issuer }, path: '' },
  ];
  for (const { what, input, path } of refused) {
    it(`refuses ${what}, naming ${path || 'the options'}`, () => {
      const r = optionsSchema.safeParse(input);
      assert.equal(r.success, false);
      assert.ok(r.error?.issues.some((i) => i.path.join('.') === path), JSON.stringify(r.error?.issues));
    });
  }

  it('defaults: the usual scopes, preferred_username, basic client auth, timeouts', () => {
    const o = issuer();
    assert.deepEqual([o.scopes, o.usernameClaim, o.clientAuth, o.discoveryTimeoutMs, o.requestTimeoutMs], [['openid', 'profile', 'email'], 'preferred_username', 'client_secret_basic', 5_000, 10_000]);
    assert.deepEqual(optionsSchema.parse({}), { issuers: {} });
  });
});

describe('auth-oidc claims → identity', () => {
  const mapped = issuer({ roleClaim: 'realm_access.roles', roleMap: { 'hs-admin': 'admin', staff: 'user' } });
  const cases: { what: string; claims: Record<string, unknown>; o?: ReturnType<typeof issuer>; want: unknown }[] = [
    { what: 'a nested role array with a mapped admin value', claims: { sub: 's1', preferred_username: 'Ann.Lee', realm_access: { roles: ['staff', 'hs-admin'] } }, o: mapped, want: { result: 'ok', identity: { username: 'ann.lee', role: 'admin', source: 'oidc:kc', subject: 's1' } } },
    { what: 'only user values: user', claims: { sub: 's2', preferred_username: 'bob', realm_access: { roles: ['staff'] } }, o: mapped, want: { result: 'ok', identity: { username: 'bob', role: 'user', source: 'oidc:kc', subject: 's2' } } },
    { what: 'a username too short', claims: { sub: 's2', preferred_username: 'bo' }, want: { result: 'deny', reason: 'the preferred_username claim is not a valid username (3-64 of a-z 0-9 . _ -)' } },
    { what: 'a string role claim', claims: { sub: 's3', preferred_username: 'carl', grp: 'ops' }, o: issuer({ roleClaim: 'grp', roleMap: { ops: 'admin' } }), want: { result: 'ok', identity: { username: 'carl', role: 'admin', source: 'oidc:kc', subject: 's3' } } },
    { what: 'no role claim at all: user', claims: { sub: 's4', preferred_username: 'dana' }, o: mapped, want: { result: 'ok', identity: { username: 'dana', role: 'user', source: 'oidc:kc', subject: 's4' } } },
    { what: 'an email as username', claims: { sub: 's5', email: 'eve@example.org' }, o: issuer({ usernameClaim: 'email' }), want: { result: 'deny', reason: 'the email claim is not a valid username (3-64 of a-z 0-9 . _ -)' } },
    { what: 'a non-string username claim', claims: { sub: 's6', preferred_username: 42 }, want: { result: 'deny', reason: 'the ID token has no preferred_username claim (usernameClaim)' } },
    { what: 'no subject', claims: { preferred_username: 'fred' }, want: { result: 'deny', reason: 'the ID token has no subject' } },
    { what: 'a roleMap key from Object.prototype', claims: { sub: 's7', preferred_username: 'gina', grp: ['constructor'] }, o: issuer({ roleClaim: 'grp', roleMap: {} }), want: { result: 'ok', identity: { username: 'gina', role: 'user', source: 'oidc:kc', subject: 's7' } } },
  ];
  for (const c of cases) {
    it(c.what, () => assert.deepEqual(identityOf('kc', c.claims, c.o ?? issuer()), c.want));
  }
  it('no ID token claims at all is a deny', () => assert.deepEqual(identityOf('kc', undefined, issuer()), { result: 'deny', reason: 'the provider returned no ID token' }));
});

describe('auth-oidc files named by the options', () => {
  it('reads the secret file (trailing newline dropped) and the CA file', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'secret'), 'top-secret\n');
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n');
    const s = readSecrets('kc', issuer({ clientSecret: undefined, clientSecretFile: join(dir, 'secret'), caFile: join(dir, 'ca.pem') }));
    assert.equal(s.clientSecret, 'top-secret');
    assert.match(s.ca ?? '', /BEGIN CERTIFICATE/);
  });

  it('a missing or empty secret file, or a CA file without a certificate, stops start-up naming the option', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'empty'), '\n');
    writeFileSync(join(dir, 'not-pem'), 'hello');
    const noSecret = { clientSecret: undefined };
    assert.throws(() => readSecrets('kc', issuer({ ...noSecret, clientSecretFile: join(dir, 'nope') })), /issuers\.kc\.clientSecretFile: cannot read .*nope: ENOENT/);
    assert.throws(() => readSecrets('kc', issuer({ ...noSecret, clientSecretFile: join(dir, 'empty') })), /issuers\.kc\.clientSecretFile: .* is empty/);
    assert.throws(() => readSecrets('kc', issuer({ caFile: join(dir, 'not-pem') })), /issuers\.kc\.caFile: .* holds no PEM certificate/);
  });
});
