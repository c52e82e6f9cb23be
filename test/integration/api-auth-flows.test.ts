import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { errorCode, startApi, type TestApi, type TokenPair } from '../helpers/api.js';
import { auditRows, browserLogin, FIXTURE_PLUGIN, until } from '../fixtures/auth-flows/client.js';
import { TestIdp } from '../fixtures/auth-flows/idp.js';

/*
 * Redirect and device flows through the real server, the fixture plugin loaded by path, its
 * IdP a real HTTP server: provisioning, every state and device-id error, SLOW_DOWN, reuse,
 * denial, and no secret in the logs.
 */

const RELAXED = { throttle: { accountLongLimit: 1_000, sourceFreeFailures: 1_000, ipFailLimit: 1_000 } };

describe('auth flows', () => {
  const idp = new TestIdp();
  let api: TestApi;
  /** Everything secret the tests saw: none may appear in a log line. */
  const secrets: string[] = [];

  before(async () => {
    await idp.start();
    idp.users.set('sso-alice', { password: 'alice idp password', role: 'user', subject: 'sub-alice' });
    idp.users.set('sso-dan', { password: 'dan idp password', role: 'user', subject: 'sub-dan' });
    idp.users.set('sso-erin', { password: 'erin idp password', role: 'user', subject: 'sub-erin' });
    idp.users.set('local-lou', { password: 'lou idp password', role: 'admin', subject: 'sub-lou' });
    idp.users.set('root-admin', { password: 'root idp password', role: 'admin', subject: 'sub-root' });
    api = await startApi({
      auth: RELAXED,
      captureLogs: true,
      config: { plugins: { 'auth-local': {}, 'quota-default': {}, [FIXTURE_PLUGIN]: { idp: idp.url, deviceExpiresInS: 3 } } },
    });
    await api.createUser('local-lou', 'local lou password');
  });
  after(async () => {
    await api?.close();
    await idp.close();
  });

  const me = async (token: string) => (await api.request('GET', '/v1/me', { token })).json as { username: string; role: string };
  const tokens = (json: unknown) => {
    const pair = json as TokenPair;
    secrets.push(pair.access_token, pair.refresh_token);
    return pair;
  };

  it('lists the flows', async () => {
    const r = await api.request('GET', '/v1/auth/flows');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, {
      flows: [
        { id: 'other-sso', label: 'Other SSO', redirect: true, device: false },
        { id: 'test-sso', label: 'Test SSO', redirect: true, device: true },
      ],
    });
  });

  it('begins with a 128-bit state and the callback on the request host', async () => {
    const r = await api.request('GET', '/v1/auth/flows/test-sso/begin');
    assert.equal(r.status, 302);
    const url = new URL(String(r.headers.location));
    assert.equal(`${url.origin}${url.pathname}`, `${idp.url}/authorize`);
    assert.match(url.searchParams.get('state') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(url.searchParams.get('redirect_uri'), 'https://hackstream.test/v1/auth/flows/test-sso/callback');
    assert.equal(r.headers['cache-control'], 'no-store');
  });

  it('provisions the account on the first callback and logs in; the state is single use', async () => {
    idp.signedIn = 'sso-alice';
    const { res, callback, state } = await browserLogin(api);
    secrets.push(state);
    assert.equal(res.status, 200, res.text);
    const pair = tokens(res.json);
    assert.equal(pair.token_type, 'Bearer');
    const who = (await api.request('GET', '/v1/me', { token: pair.access_token })).json as { username: string; role: string; source: string | null };
    assert.deepEqual([who.username, who.role, who.source], ['sso-alice', 'user', 'test-sso']);
    const created = (await auditRows(api, 'user_created')).find((r) => r.details.username === 'sso-alice');
    assert.equal(created?.actor, 'auth-flows-test');
    assert.equal(created?.details.source, 'test-sso');
    assert.equal(created?.details.subject, 'sub-alice');
    const success = (await auditRows(api, 'authn_login_success'))[0];
    assert.equal(success?.details.provider, 'auth-flows-test');
    assert.equal(success?.details.flow, 'test-sso');

    const again = await api.request('GET', callback);
    assert.equal(again.status, 400);
    assert.equal(errorCode(again), 'AUTH_FLOW_STATE_INVALID');
  });

  it('lets only one of two concurrent callbacks with the same state through, asking the plugin once', async () => {
    idp.signedIn = 'sso-alice';
    const begin = await api.request('GET', '/v1/auth/flows/test-sso/begin');
    const atIdp = await fetch(String(begin.headers.location), { redirect: 'manual' });
    const back = new URL(String(atIdp.headers.get('location')));
    const tokenCalls = idp.seen.filter((p) => p === '/token').length;
    const path = `/v1/auth/flows/test-sso/callback${back.search}`;
    const [a, b] = await Promise.all([api.request('GET', path), api.request('GET', path)]);
    assert.deepEqual([a.status, b.status].sort(), [200, 400]);
    assert.equal(errorCode(a.status === 400 ? a : b), 'AUTH_FLOW_STATE_INVALID');
    assert.equal(idp.seen.filter((p) => p === '/token').length - tokenCalls, 1);
    tokens((a.status === 200 ? a : b).json);
  });

  const badStates: [string, () => Promise<string>][] = [
    ['missing', async () => '/v1/auth/flows/test-sso/callback?code=abc'],
    ['unknown', async () => `/v1/auth/flows/test-sso/callback?code=abc&state=${randomBytes(32).toString('base64url')}`],
    ['malformed', async () => '/v1/auth/flows/test-sso/callback?code=abc&state=%00%01'],
    [
      'issued for another flow',
      async () => {
        const begin = await api.request('GET', '/v1/auth/flows/other-sso/begin');
        const state = new URL(String(begin.headers.location)).searchParams.get('state') ?? '';
        return `/v1/auth/flows/test-sso/callback?code=abc&state=${state}`;
      },
    ],
  ];
  for (const [desc, path] of badStates) {
    it(`refuses a ${desc} state with 400 AUTH_FLOW_STATE_INVALID before asking the plugin, audited`, async () => {
      const p = await path();
      const tokenCalls = idp.seen.filter((s) => s === '/token').length;
      const r = await api.request('GET', p);
      assert.equal(r.status, 400, r.text);
      assert.equal(errorCode(r), 'AUTH_FLOW_STATE_INVALID');
      assert.equal(idp.seen.filter((s) => s === '/token').length, tokenCalls, 'the plugin was not asked');
      const row = (await auditRows(api, 'authn_login_fail'))[0];
      assert.equal(row?.details.flow, 'test-sso');
      assert.match(String(row?.details.reason), /^state-/);
    });
  }

  it('refuses a repeated state parameter as invalid input', async () => {
    const r = await api.request('GET', '/v1/auth/flows/test-sso/callback?state=a&state=b');
    assert.equal(r.status, 400);
    assert.equal(errorCode(r), 'VALIDATION_FAILED');
  });

  it('answers 401 AUTH_FLOW_DENIED when the provider denies; the reason only in the audit', async () => {
    idp.signedIn = null;
    const { res } = await browserLogin(api);
    assert.equal(res.status, 401);
    assert.equal(errorCode(res), 'AUTH_FLOW_DENIED');
    assert.ok(!res.text.includes('access_denied'));
    const row = (await auditRows(api, 'authn_login_fail'))[0];
    assert.equal(row?.details.reason, 'idp-error:access_denied');
    assert.equal(row?.details.flow, 'test-sso');
    assert.equal(row?.details.provider, 'auth-flows-test');
  });

  it('follows the provider\'s role on the next login and ends the old role\'s tokens', async () => {
    idp.signedIn = 'sso-alice';
    const first = tokens((await browserLogin(api)).res.json);
    assert.equal((await me(first.access_token)).role, 'user');
    idp.users.set('sso-alice', { password: 'alice idp password', role: 'admin', subject: 'sub-alice' });
    const { res } = await browserLogin(api);
    assert.equal(res.status, 200, res.text);
    const second = tokens(res.json);
    assert.equal((await me(second.access_token)).role, 'admin');
    assert.equal((await api.request('GET', '/v1/me', { token: first.access_token })).status, 401, 'tokens of the old role end');
    const changed = (await auditRows(api, 'privilege_permissions_changed'))[0];
    assert.equal(changed?.actor, 'auth-flows-test');
    assert.equal(changed?.details.role, 'admin');
  });

  for (const username of ['local-lou', 'root-admin']) {
    it(`never takes over the local account ${username}: AUTH_FLOW_DENIED, audited account-owned-elsewhere`, async () => {
      idp.signedIn = username;
      const { res } = await browserLogin(api);
      assert.equal(res.status, 401, res.text);
      assert.equal(errorCode(res), 'AUTH_FLOW_DENIED');
      assert.equal((await auditRows(api, 'authn_login_fail'))[0]?.details.reason, 'account-owned-elsewhere');
      const users = (await api.request('GET', '/v1/users?limit=100', { token: await api.adminToken() })).json as { items: { username: string; role: string }[] };
      assert.equal(users.items.find((u) => u.username === username)?.role, username === 'root-admin' ? 'admin' : 'user');
    });
  }

  it('keeps a disabled account disabled whatever the provider says', async () => {
    idp.signedIn = 'sso-dan';
    const first = await browserLogin(api);
    assert.equal(first.res.status, 200);
    tokens(first.res.json);
    const id = ((await api.request('GET', '/v1/users?limit=100', { token: await api.adminToken() })).json as { items: { id: string; username: string }[] }).items.find(
      (u) => u.username === 'sso-dan',
    )?.id;
    assert.equal((await api.request('PATCH', `/v1/users/${id}`, { token: await api.adminToken(), body: { disabled: true } })).status, 200);
    idp.users.set('sso-dan', { password: 'dan idp password', role: 'admin', subject: 'sub-dan' });
    const { res } = await browserLogin(api);
    assert.equal(res.status, 401);
    assert.equal(errorCode(res), 'AUTH_FLOW_DENIED');
    assert.equal((await auditRows(api, 'authn_login_fail'))[0]?.details.reason, 'disabled');
  });

  it('logs in an identity the password provider answers, and refuses a local password to an external account', async () => {
    const ok = await api.request('POST', '/v1/login', { body: { username: 'sso-erin', password: 'erin idp password' } });
    assert.equal(ok.status, 200, ok.text);
    tokens(ok.json);
    // The IdP forgets erin: the account has no local password, so nothing accepts it.
    idp.users.delete('sso-erin');
    const local = await api.request('POST', '/v1/login', { body: { username: 'sso-erin', password: 'erin idp password' } });
    assert.equal(local.status, 401);
    assert.equal(errorCode(local), 'AUTH_INVALID_CREDENTIALS');
  });

  describe('device flow', () => {
    const start = async () => {
      const r = await api.request('POST', '/v1/auth/flows/test-sso/device');
      assert.equal(r.status, 200, r.text);
      const grant = r.json as { device_id: string; user_code: string; verification_uri: string; verification_uri_complete: string; expires_in: number; interval: number };
      secrets.push(grant.device_id);
      return grant;
    };
    const poll = (deviceId: string) => api.request('POST', '/v1/auth/flows/test-sso/device/poll', { body: { device_id: deviceId } });
    const answer = (r: Awaited<ReturnType<typeof poll>>) => `${r.status} ${errorCode(r) ?? ''}`.trim();

    it('hands out a device id, the user code and the interval', async () => {
      const grant = await start();
      assert.match(grant.device_id, /^[A-Za-z0-9_-]{43}$/);
      assert.deepEqual({ ...grant, device_id: 'x', user_code: 'x' }, {
        device_id: 'x',
        user_code: 'x',
        verification_uri: `${idp.url}/device`,
        verification_uri_complete: `${idp.url}/device?user_code=${grant.user_code}`,
        expires_in: 3,
        interval: 1,
      });
    });

    it('answers pending, then SLOW_DOWN when polled sooner than the interval', async () => {
      const grant = await start();
      assert.equal(answer(await poll(grant.device_id)), '400 AUTHORIZATION_PENDING');
      const r = await poll(grant.device_id);
      assert.equal(answer(r), '400 SLOW_DOWN');
      assert.match((r.json as { error: { message: string } }).error.message, /6 s/, 'the interval grows by 5 s');
    });

    it('logs in once approved; the device id never works again', async () => {
      const grant = await start();
      idp.approve(grant.user_code, 'sso-alice');
      const r = await poll(grant.device_id);
      assert.equal(r.status, 200, r.text);
      assert.equal((await me(tokens(r.json).access_token)).username, 'sso-alice');
      const success = (await auditRows(api, 'authn_login_success'))[0];
      assert.equal(success?.details.flow, 'test-sso');
      await until(async () => answer(await poll(grant.device_id)) !== '400 SLOW_DOWN', 10_000);
      assert.equal(answer(await poll(grant.device_id)), '400 EXPIRED_TOKEN');
    });

    it('answers AUTH_FLOW_DENIED when the user denies, then EXPIRED_TOKEN', async () => {
      const grant = await start();
      idp.deny(grant.user_code);
      assert.equal(answer(await poll(grant.device_id)), '401 AUTH_FLOW_DENIED');
      assert.equal((await auditRows(api, 'authn_login_fail'))[0]?.details.reason, 'user-denied');
      assert.equal(answer(await poll(grant.device_id)), '400 EXPIRED_TOKEN');
    });

    it('answers EXPIRED_TOKEN when the provider says expired, and when the device id outlives its expiry', async () => {
      const a = await start();
      idp.expire(a.user_code);
      assert.equal(answer(await poll(a.device_id)), '400 EXPIRED_TOKEN');
      const b = await start();
      assert.equal(answer(await poll(b.device_id)), '400 AUTHORIZATION_PENDING');
      // Core's own expiry (3 s here): until then each poll is pending or too soon.
      await until(async () => {
        const got = answer(await poll(b.device_id));
        assert.ok(['400 SLOW_DOWN', '400 AUTHORIZATION_PENDING', '400 EXPIRED_TOKEN'].includes(got), got);
        return got === '400 EXPIRED_TOKEN';
      }, 15_000);
    });

    for (const [desc, body, expected] of [
      ['an unknown device id', { device_id: randomBytes(32).toString('base64url') }, '400 EXPIRED_TOKEN'],
      ['a malformed device id', { device_id: 'nope' }, '400 EXPIRED_TOKEN'],
      ['no device id', {}, '400 VALIDATION_FAILED'],
      ['an extra field', { device_id: 'x', more: 1 }, '400 VALIDATION_FAILED'],
    ] as const) {
      it(`refuses ${desc}: ${expected}`, async () => {
        const r = await api.request('POST', '/v1/auth/flows/test-sso/device/poll', { body });
        assert.equal(answer(r), expected);
      });
    }
  });

  for (const [method, path] of [
    ['GET', '/v1/auth/flows/nope/begin'],
    ['GET', '/v1/auth/flows/nope/callback?state=x'],
    ['POST', '/v1/auth/flows/nope/device'],
    ['POST', '/v1/auth/flows/other-sso/device'],
  ] as const) {
    it(`answers 404 AUTH_FLOW_NOT_FOUND for ${method} ${path}`, async () => {
      const r = await api.request(method, path);
      assert.equal(r.status, 404);
      assert.equal(errorCode(r), 'AUTH_FLOW_NOT_FOUND');
    });
  }

  it('answers 404 AUTH_FLOW_NOT_FOUND for a poll of an unknown flow', async () => {
    const r = await api.request('POST', '/v1/auth/flows/nope/device/poll', { body: { device_id: 'x' } });
    assert.equal(errorCode(r), 'AUTH_FLOW_NOT_FOUND');
  });

  it('wrote no state, device id or token to the logs', () => {
    assert.ok(secrets.length > 10);
    const leaked = secrets.filter((s) => api.logs.some((line) => line.includes(s)));
    assert.deepEqual(leaked, []);
  });
});
