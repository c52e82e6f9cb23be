import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type Router from '@koa/router';
import { ProfileService } from '../../core/profiles/service.js';
import { apiRoutes, createApi, type ApiDeps } from '../../core/api/app.js';
import type { Access } from '../../core/api/route.js';
import { silentLogger } from '../../lib/log.js';
import { FIXTURE_PLUGIN } from '../fixtures/auth-flows/client.js';
import { TestIdp } from '../fixtures/auth-flows/idp.js';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';

/*
 * RBAC matrix (reliability A10): every route × {anonymous, user, other user, admin}, through
 * the gateway. The list of routes is read from the router the app itself builds (createApi
 * with the running server's control, sessions and plugins): core, session and plugin routes.
 * A new route without a case here fails the test.
 */

type Actor = 'anonymous' | 'user' | 'other' | 'admin';
const ACTORS: Actor[] = ['anonymous', 'user', 'other', 'admin'];
const RELAXED = { throttle: { accountShortLimit: 1_000, accountLongLimit: 1_000, ipFailLimit: 1_000 } };

interface Case {
  /** A request that succeeds when access is granted. */
  body?: () => unknown;
  path?: () => string;
  query?: string;
  /** Public routes: the answer every actor gets. */
  publicStatus?: number;
  /**
   * The status when access is granted, where a 2xx would need more than this test has (a
   * session needs a container): an answer from behind the guard, never 401/403.
   */
  grantedStatus?: number;
  /** Plugin routes decide their own access: the answer per actor. */
  perActor?: Record<Actor, number>;
}

/** Every method and path the app's router serves (HEAD is GET's). */
function servedRoutes(deps: ApiDeps): string[] {
  const app = createApi(deps);
  const dispatch = app.middleware.find((m) => 'router' in m) as unknown as { router: Router } | undefined;
  assert.ok(dispatch, 'the app mounts a router');
  return dispatch.router.stack.flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${layer.path}`));
}

describe('RBAC on every route', () => {
  let api: TestApi;
  const idp = new TestIdp();
  const ids: Record<string, string> = {};
  before(async () => {
    await idp.start();
    api = await startApi({ auth: RELAXED, config: { plugins: { 'auth-local': {}, 'quota-default': {}, [FIXTURE_PLUGIN]: { idp: idp.url } } } });
    ids.user = await api.createUser('rbac-user', 'rbac user password');
    ids.other = await api.createUser('rbac-other', 'rbac other password');
    ids.target = await api.createUser('rbac-target', 'rbac target password');
  });
  after(async () => {
    await api?.close();
    await idp.close();
  });
  const deps = (): ApiDeps => ({
    logger: silentLogger(),
    control: api.gw.app.control,
    dataSource: api.gw.app.db.dataSource,
    probes: [],
    plugins: api.gw.app.plugins,
    sessions: api.gw.app.sessions,
    profiles: new ProfileService({ dataSource: api.gw.app.db.dataSource, runtime: api.gw.app.runtime, audit: api.gw.app.control.audit, logger: silentLogger() }),
  });
  const NO_SESSION = '/v1/sessions/00000000-0000-4000-8000-000000000000';

  const passwords: Record<Exclude<Actor, 'anonymous' | 'admin'>, [string, string]> = {
    user: ['rbac-user', 'rbac user password'],
    other: ['rbac-other', 'rbac other password'],
  };
  /** A fresh token per check: logout must not spoil the next case. */
  async function tokenFor(actor: Actor): Promise<string | undefined> {
    if (actor === 'anonymous') return undefined;
    if (actor === 'admin') return (await api.login('root-admin', 'Bootstrap-Admin-Pass-1')).access_token;
    const [u, p] = passwords[actor];
    return (await api.login(u, p)).access_token;
  }

  const CASES: Record<string, Case> = {
    'GET /health': { publicStatus: 200 },
    'GET /ready': { publicStatus: 200 },
    'GET /v1/metrics': {},
    'GET /v1/openapi.json': { publicStatus: 200 },
    'POST /v1/login': { body: () => ({ username: 'rbac-target', password: 'not the password' }), publicStatus: 401 },
    'POST /v1/token/refresh': { body: () => ({ refresh_token: `hsr_${randomBytes(32).toString('base64url')}` }), publicStatus: 401 },
    'POST /v1/logout': {},
    'GET /v1/me': {},
    'GET /v1/quotas': {},
    'POST /v1/users': { body: () => ({ username: `made-${randomBytes(4).toString('hex')}`, password: 'a made-up password' }) },
    'GET /v1/users': { query: 'limit=5' },
    // The target is another user's account: only an admin may change it.
    'PATCH /v1/users/:id': { path: () => `/v1/users/${ids.target}`, body: () => ({ quota: { max_sessions: 3 } }) },
    'POST /v1/users/:id/unlock': { path: () => `/v1/users/${ids.target}/unlock`, body: () => ({}) },
    'GET /v1/audit': { query: 'limit=5' },
    // Session routes: the guard is what is checked; past it, a request that needs no container.
    'POST /v1/sessions': { body: () => ({ app: 'no-such-app' }), grantedStatus: 400 },
    'GET /v1/sessions': {},
    'GET /v1/sessions/:id': { path: () => NO_SESSION, grantedStatus: 404 },
    'POST /v1/sessions/:id/connect': { path: () => `${NO_SESSION}/connect`, grantedStatus: 404 },
    'POST /v1/sessions/:id/stop': { path: () => `${NO_SESSION}/stop`, grantedStatus: 404 },
    // Persistent profiles: nobody here has one, so a read says null and a delete deletes nothing.
    'GET /v1/profile': {},
    'POST /v1/profile/reset': { body: () => ({}) },
    'GET /v1/users/:id/profile': { path: () => `/v1/users/${ids.target}/profile` },
    'POST /v1/users/:id/profile/delete': { path: () => `/v1/users/${ids.target}/profile/delete`, body: () => ({}) },
    // Second factors and sign-in flows: public steps of logging in.
    'POST /v1/login/second-factor': { body: () => ({ challenge_id: randomBytes(32).toString('base64url'), factor: 'test-code', response: '1' }), publicStatus: 401 },
    'GET /v1/auth/flows': { publicStatus: 200 },
    'GET /v1/auth/flows/:id/begin': { path: () => '/v1/auth/flows/test-sso/begin', publicStatus: 302 },
    'GET /v1/auth/flows/:id/callback': { path: () => '/v1/auth/flows/test-sso/callback', query: 'state=unknown', publicStatus: 400 },
    'POST /v1/auth/flows/:id/device': { path: () => '/v1/auth/flows/test-sso/device', publicStatus: 200 },
    'POST /v1/auth/flows/:id/device/poll': { path: () => '/v1/auth/flows/test-sso/device/poll', body: () => ({ device_id: 'unknown' }), publicStatus: 400 },
    // The fixture plugin's route decides its own access.
    'GET /v1/plugins/auth-flows-test/whoami': { perActor: { anonymous: 401, user: 200, other: 200, admin: 200 } },
  };

  it('covers every route the app serves, and nothing but them', () => {
    assert.deepEqual(servedRoutes(deps()).sort(), Object.keys(CASES).sort());
  });

  it('gives each actor exactly the expected answer (0 mismatches)', async () => {
    const access = new Map<string, Access>(apiRoutes(deps()).map((r) => [`${r.method} ${r.path}`, r.access]));
    const mismatches: string[] = [];
    for (const key of servedRoutes(deps())) {
      const [method = '', routePath = ''] = key.split(' ');
      const c = CASES[key] as Case;
      const rule = access.get(key);
      for (const actor of ACTORS) {
        const token = await tokenFor(actor);
        const path = (c.path?.() ?? routePath) + (c.query ? `?${c.query}` : '');
        const res = await api.request(method, path, { ...(token ? { token } : {}), ...(c.body ? { body: c.body() } : {}) });
        let expected: string;
        if (rule === undefined) expected = String(c.perActor?.[actor]);
        else if (rule === 'public') expected = String(c.publicStatus);
        else if (actor === 'anonymous') expected = '401 AUTH_REQUIRED';
        else if (rule === 'admin' && actor !== 'admin') expected = '403 FORBIDDEN';
        else expected = c.grantedStatus === undefined ? '2xx' : String(c.grantedStatus);
        let got = String(res.status);
        if (rule !== undefined && rule !== 'public') {
          if (res.status >= 200 && res.status < 300 && c.grantedStatus === undefined) got = '2xx';
          else if (res.status === 401 || res.status === 403) got = `${res.status} ${errorCode(res)}`;
        }
        if (got !== expected) mismatches.push(`${actor} ${method} ${path}: expected ${expected}, got ${res.status} ${res.text.slice(0, 120)}`);
      }
    }
    assert.deepEqual(mismatches, []);
  });

  it('refuses another user\'s account to a non-admin whatever the change, and audits each refusal (A12: 100 authz_fail rows)', async () => {
    const token = await tokenFor('user');
    const before = await api.request('GET', `/v1/audit?action=authz_fail&user=${ids.user}&limit=500`, { token: await tokenFor('admin') });
    const already = (before.json as { items: unknown[] }).items.length;
    const attempts = [
      { method: 'PATCH', path: `/v1/users/${ids.other}`, body: { role: 'admin' } },
      { method: 'PATCH', path: `/v1/users/${ids.user}`, body: { role: 'admin' } },
      { method: 'PATCH', path: `/v1/users/${ids.other}`, body: { disabled: true } },
      { method: 'GET', path: '/v1/users' },
      { method: 'GET', path: '/v1/audit' },
    ];
    for (let i = 0; i < 100; i++) {
      const a = attempts[i % attempts.length] as (typeof attempts)[number];
      const r = await api.request(a.method, a.path, { token: token as string, ...(a.body ? { body: a.body } : {}) });
      assert.equal(r.status, 403);
      assert.equal(r.text, '{"error":{"code":"FORBIDDEN","message":"this needs the admin role"}}');
    }
    const rows = await api.request('GET', `/v1/audit?action=authz_fail&user=${ids.user}&limit=500`, { token: await tokenFor('admin') });
    const items = (rows.json as { items: { at: string; source_ip: string | null; actor: string }[] }).items;
    assert.equal(items.length - already, 100);
    assert.ok(items.every((row) => row.at.endsWith('Z') && row.source_ip === '127.0.0.1' && row.actor === ids.user));
    const me = (await api.request('GET', '/v1/me', { token: token as string })).json as { role: string };
    assert.equal(me.role, 'user', 'nothing changed');
  });

  it('a role change takes effect on the next request (no stale role in a token)', async () => {
    const admin = await tokenFor('admin');
    const before = await tokenFor('other');
    assert.equal((await api.request('GET', '/v1/users', { token: before as string })).status, 403);
    assert.equal((await api.request('PATCH', `/v1/users/${ids.other}`, { token: admin as string, body: { role: 'admin' } })).status, 200);
    assert.equal((await api.request('GET', '/v1/users', { token: before as string })).status, 401, 'a privilege change ends the old tokens');
    const after = await tokenFor('other');
    assert.equal((await api.request('GET', '/v1/users', { token: after as string })).status, 200);
    assert.equal((await api.request('PATCH', `/v1/users/${ids.other}`, { token: admin as string, body: { role: 'user' } })).status, 200);
    assert.equal((await api.request('GET', '/v1/users', { token: after as string })).status, 401);
  });
});
