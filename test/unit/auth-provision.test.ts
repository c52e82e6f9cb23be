import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAudit, type Audit } from '../../core/auth/audit.js';
import { PasswordHasher } from '../../core/auth/passwords.js';
import { provisionIdentity } from '../../core/auth/provision.js';
import { Users } from '../../core/auth/users.js';
import { queryAudit } from '../../core/audit/query.js';
import { FAST_ARGON2 } from '../helpers/api.js';
import { openTestDatabase, type TestDatabase } from '../helpers/store.js';

/*
 * Just-in-time provisioning of external identities against real PostgreSQL: create, role
 * follows the provider (audited, tokens revoked), never a takeover, disabled stays disabled.
 */

describe('provisioning external identities', () => {
  let t: TestDatabase;
  let users: Users;
  let audit: Audit;
  const changed: string[] = [];
  const ctx = { provider: 'sso-test', ip: '192.0.2.7' };
  const deps = () => ({ users, audit });
  const rows = async (action: string) => (await queryAudit(t.db.dataSource, { action, limit: 100 })).items;

  before(async () => {
    t = await openTestDatabase('postgres');
    audit = createAudit(t.db.dataSource);
    users = new Users(t.db.dataSource, new PasswordHasher(FAST_ARGON2, { concurrency: 1, queueMax: 10 }), audit, async (id) => void changed.push(id));
    await users.create({ username: 'local-admin', password: 'local admin password 1', role: 'admin' }, { id: 'system', ip: null });
    await users.create({ username: 'local-user', password: 'local user password 1', role: 'user' }, { id: 'system', ip: null });
  });
  after(async () => {
    await t?.cleanup();
  });

  it('creates a missing account owned by the source, without a password, audited with source and subject', async () => {
    const out = await provisionIdentity(deps(), { username: 'Alice', role: 'user', source: 'oidc:test', subject: 'sub-alice' }, ctx);
    assert.ok(out.ok);
    assert.equal(out.created, true);
    assert.equal(out.user.source, 'oidc:test');
    assert.equal(out.user.passwordHash, null);
    assert.equal(out.user.role, 'user');
    const created = (await rows('user_created')).find((r) => r.target === out.user.id);
    assert.ok(created, 'user_created row');
    assert.equal(created.actor, 'sso-test');
    assert.equal(created.details.source, 'oidc:test');
    assert.equal(created.details.subject, 'sub-alice');
    // Found again case-insensitively: the same account, not a second one.
    const again = await provisionIdentity(deps(), { username: 'alice', role: 'user', source: 'oidc:test', subject: 'sub-alice' }, ctx);
    assert.ok(again.ok);
    assert.equal(again.created, false);
    assert.equal(again.user.id, out.user.id);
  });

  it('follows the provider\'s role: audited privilege_permissions_changed, every token revoked', async () => {
    const first = await provisionIdentity(deps(), { username: 'bob', role: 'user', source: 'ldap', subject: 'uid=bob' }, ctx);
    assert.ok(first.ok);
    const promoted = await provisionIdentity(deps(), { username: 'bob', role: 'admin', source: 'ldap', subject: 'uid=bob' }, ctx);
    assert.ok(promoted.ok);
    assert.equal(promoted.user.role, 'admin');
    assert.equal(promoted.user.tokenEpoch, first.user.tokenEpoch + 1, 'tokens of the old role end');
    assert.ok(changed.includes(first.user.id), 'the principal cache is told');
    const row = (await rows('privilege_permissions_changed')).find((r) => r.target === first.user.id);
    assert.ok(row);
    assert.equal(row.actor, 'sso-test');
    assert.equal(row.details.role, 'admin');
    assert.equal(row.details.previousRole, 'user');
  });

  for (const [desc, identity] of [
    ['a local account', { username: 'local-user', role: 'user', source: 'oidc:test', subject: 'x' }],
    ['the local admin (never taken over)', { username: 'LOCAL-ADMIN', role: 'admin', source: 'oidc:test', subject: 'x' }],
    ['another source\'s account', { username: 'alice', role: 'user', source: 'ldap', subject: 'uid=alice' }],
  ] as const) {
    it(`refuses ${desc}: account-owned-elsewhere, nothing changed`, async () => {
      const before = await users.findByUsername(identity.username);
      const out = await provisionIdentity(deps(), identity, ctx);
      assert.deepEqual(out, { ok: false, reason: 'account-owned-elsewhere', userId: before?.id });
      const now = await users.findByUsername(identity.username);
      assert.deepEqual(now, before);
    });
  }

  it('keeps a disabled account disabled, whatever role the provider says', async () => {
    const made = await provisionIdentity(deps(), { username: 'carol', role: 'user', source: 'ldap', subject: 'uid=carol' }, ctx);
    assert.ok(made.ok);
    await users.update(made.user.id, { disabled: true }, { id: 'system', ip: null });
    const out = await provisionIdentity(deps(), { username: 'carol', role: 'admin', source: 'ldap', subject: 'uid=carol' }, ctx);
    assert.deepEqual(out, { ok: false, reason: 'disabled', userId: made.user.id });
    const now = await users.findById(made.user.id);
    assert.equal(now?.disabled, true);
    assert.equal(now?.role, 'user');
  });

  for (const [desc, identity] of [
    ['a bad username', { username: '../x', role: 'user', source: 'ldap', subject: 's' }],
    ['an unknown role', { username: 'dave', role: 'root', source: 'ldap', subject: 's' }],
    ['a bad source', { username: 'dave', role: 'user', source: 'LDAP!', subject: 's' }],
    ['an empty subject', { username: 'dave', role: 'user', source: 'ldap', subject: '' }],
    ['an extra field', { username: 'dave', role: 'user', source: 'ldap', subject: 's', admin: true }],
    ['not an object', 'dave'],
  ] as const) {
    it(`refuses ${desc} (invalid-identity), creating nothing`, async () => {
      const out = await provisionIdentity(deps(), identity, ctx);
      assert.deepEqual(out, { ok: false, reason: 'invalid-identity', userId: null });
      assert.equal(await users.findByUsername('dave'), null);
    });
  }

  it('creates one account when two first logins race', async () => {
    const identity = { username: 'erin', role: 'user', source: 'ldap', subject: 'uid=erin' } as const;
    const [a, b] = await Promise.all([provisionIdentity(deps(), identity, ctx), provisionIdentity(deps(), identity, ctx)]);
    assert.ok(a.ok && b.ok);
    assert.equal(a.user.id, b.user.id);
    assert.equal([a.created, b.created].filter(Boolean).length, 1);
  });

  it('never demotes the last enabled admin: the login is refused instead', async () => {
    // An external admin alone: the local admin is disabled for this case.
    const root = await users.findByUsername('local-admin');
    const bob = await users.findByUsername('bob');
    assert.ok(root && bob?.role === 'admin');
    await users.update(root.id, { disabled: true }, { id: 'system', ip: null });
    const out = await provisionIdentity(deps(), { username: 'bob', role: 'user', source: 'ldap', subject: 'uid=bob' }, ctx);
    assert.deepEqual(out, { ok: false, reason: 'role-change-refused', userId: bob.id });
    assert.equal((await users.findById(bob.id))?.role, 'admin');
  });
});
