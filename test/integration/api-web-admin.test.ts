import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, errorCode, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';

/*
 * The admin console's cookie API (/web/api/admin) in process, through the real gateway: the
 * refusal anyone but an admin gets (the unknown-path 404, before the body, query or CSRF
 * header is looked at), CSRF on every POST, and the user operations as /v1 does them.
 * Chromium and the sessions side: test/e2e/web-admin.test.ts.
 */

const USER = { username: 'plain-api-user', password: 'Plain-Api-User-Pass-1' };
const CSRF = { 'x-hackstream-csrf': '1' };

/** Every console route, with a body that would be valid for an admin. */
const ROUTES: [string, string, unknown?][] = [
  ['GET', '/admin'],
  ['GET', '/admin/users'],
  ['GET', '/admin/sessions'],
  ['GET', '/admin/audit'],
  ['GET', '/admin/capacity'],
  ['GET', '/admin/assets/admin.js'],
  ['GET', '/admin/assets/admin.css'],
  ['GET', '/web/api/admin/users'],
  ['POST', '/web/api/admin/users', { username: 'sneaky', password: 'Sneaky-Password-1234' }],
  ['POST', '/web/api/admin/users/00000000-0000-4000-8000-000000000000', { disabled: true }],
  ['POST', '/web/api/admin/users/00000000-0000-4000-8000-000000000000/second-factor/reset'],
  ['GET', '/web/api/admin/sessions'],
  ['POST', '/web/api/admin/sessions/00000000-0000-4000-8000-000000000000/stop'],
  ['GET', '/web/api/admin/audit'],
  ['GET', '/web/api/admin/audit/verify'],
  ['GET', '/web/api/admin/audit.csv'],
  ['GET', '/web/api/admin/capacity'],
];

describe('the admin console API (/web/api/admin)', () => {
  let api: TestApi;
  let adminCookie = '';
  let userCookie = '';
  let userId = '';

  async function cookieOf(who: { username: string; password: string }): Promise<string> {
    const r = await api.request('POST', '/web/api/login', { body: who, headers: CSRF });
    assert.equal(r.status, 204, r.text);
    const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []);
    return set.map((c) => c.split(';')[0]).join('; ');
  }
  const as = (cookie: string, method: string, path: string, body?: unknown, headers: Record<string, string> = CSRF): Promise<ApiResponse> =>
    api.request(method, path, { ...(body !== undefined ? { body } : {}), headers: { cookie, ...headers } });

  before(async () => {
    api = await startApi({ db: 'postgres' });
    userId = await api.createUser(USER.username, USER.password);
    adminCookie = await cookieOf(ADMIN);
    userCookie = await cookieOf(USER);
  });
  after(async () => {
    await api?.close();
  });

  it('answers no cookie, a non-admin, a bad body and a missing CSRF header alike: the unknown path 404', async () => {
    const unknown = await api.request('GET', '/no-such-path');
    assert.equal(unknown.status, 404);
    for (const [method, path, body] of ROUTES) {
      for (const [who, cookie, extra] of [
        ['no cookie', '', CSRF],
        ['a user', userCookie, CSRF],
        ['a user, no CSRF header', userCookie, {}],
      ] as const) {
        const r = await as(cookie, method, path, body, extra);
        assert.equal(r.status, 404, `${who}: ${method} ${path} → ${r.status} ${r.text.slice(0, 100)}`);
        assert.deepEqual(r.json, unknown.json, `${who}: ${method} ${path}`);
      }
      // A body the schema would refuse: still 404, not 400 (the gate comes first).
      if (method === 'POST') assert.equal((await as(userCookie, method, path, { nonsense: 1 })).status, 404);
    }
    const me = await api.request('GET', '/v1/users?limit=200', { token: await api.adminToken() });
    assert.ok(!(me.json as { items: { username: string }[] }).items.some((u) => u.username === 'sneaky'));
  });

  it('refuses an admin POST without the CSRF header or from another origin (403), and takes it with them', async () => {
    const body = { username: 'made-by-console', password: 'Made-By-Console-1234', role: 'user' };
    assert.equal(errorCode(await as(adminCookie, 'POST', '/web/api/admin/users', body, {})), 'FORBIDDEN');
    assert.equal((await as(adminCookie, 'POST', '/web/api/admin/users', body, { ...CSRF, origin: 'https://evil.example' })).status, 403);
    const ok = await as(adminCookie, 'POST', '/web/api/admin/users', body, { ...CSRF, origin: `https://${PUBLIC_HOST}` });
    assert.equal(ok.status, 201, ok.text);
    assert.equal((ok.json as { username: string }).username, body.username);
    const bad = await as(adminCookie, 'POST', '/web/api/admin/users', { ...body, username: '<img src=x>' });
    assert.equal(errorCode(bad), 'VALIDATION_FAILED');
    assert.equal(errorCode(await as(adminCookie, 'POST', '/web/api/admin/users/00000000-0000-4000-8000-000000000000', { disabled: true })), 'NOT_FOUND');
  });

  it('changes a role, a quota override and a password (the old one stops working); disables and enables', async () => {
    const post = (body: unknown) => as(adminCookie, 'POST', `/web/api/admin/users/${userId}`, body);
    assert.equal((await post({ quota: { max_sessions: 2, memory_mb: 1024 } })).status, 200);
    const role = await post({ role: 'admin' });
    assert.deepEqual([(role.json as { role: string }).role, (role.json as { quota: unknown }).quota], ['admin', { max_sessions: 2, memory_mb: 1024 }]);
    assert.equal((await post({ role: 'user', quota: { max_sessions: null } })).status, 200);
    assert.equal((await post({ password: 'Brand-New-Password-9876' })).status, 200);
    assert.equal((await api.request('POST', '/v1/login', { body: USER })).status, 401, 'the old password');
    await api.login(USER.username, 'Brand-New-Password-9876');
    assert.equal((await as(userCookie, 'GET', '/web/api/me')).status, 401, 'the reset revoked the user’s cookie session');
    const off = await post({ disabled: true });
    assert.equal((off.json as { disabled: boolean }).disabled, true);
    assert.equal((await api.request('POST', '/v1/login', { body: { username: USER.username, password: 'Brand-New-Password-9876' } })).status, 401);
    assert.equal(((await post({ disabled: false })).json as { disabled: boolean }).disabled, false);
    await api.login(USER.username, 'Brand-New-Password-9876');
  });

  it('filters the audit by username, verifies the chain and exports CSV as a download', async () => {
    const page = await as(adminCookie, 'GET', `/web/api/admin/audit?user=${USER.username}&action=user_updated`);
    const items = (page.json as { items: { target: string; action: string }[] }).items;
    // Quota, password, disable, enable (the two role changes are privilege_permissions_changed).
    assert.equal(items.length, 4, `the console's changes: ${JSON.stringify(items)}`);
    assert.ok(items.every((i) => i.target === userId && i.action === 'user_updated'));
    const chain = await as(adminCookie, 'GET', '/web/api/admin/audit/verify');
    assert.equal((chain.json as { ok: boolean }).ok, true);
    const csv = await as(adminCookie, 'GET', `/web/api/admin/audit.csv?user=${USER.username}&action=user_updated`);
    assert.equal(csv.status, 200);
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    assert.match(String(csv.headers['content-disposition']), /^attachment; filename="hackstream-audit\.csv"$/);
    assert.equal(csv.text.trim().split('\r\n').length - 1, items.length);
    assert.equal(csv.headers['x-hackstream-rows'], String(items.length));
    assert.equal(errorCode(await as(adminCookie, 'GET', '/web/api/admin/audit?action=Not%20one')), 'VALIDATION_FAILED');
  });
});
