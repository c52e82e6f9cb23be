import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { errorCode, startApi, type ApiResponse, type TestApi, type TokenPair } from '../helpers/api.js';
import { auditRows, browserLogin, FIXTURE_PLUGIN, until } from '../fixtures/auth-flows/client.js';
import { TestIdp } from '../fixtures/auth-flows/idp.js';

/*
 * Second factors through the real server, with the fixture plugin's `test-code` factor
 * (one known code) for some users: after a password, a redirect or a device first factor;
 * wrong codes, tries, single use, a revoked login, and no code or challenge id in the logs.
 */

const CODE = '246810';
const RELAXED = { throttle: { accountLongLimit: 1_000, sourceFreeFailures: 1_000, ipFailLimit: 1_000 } };

interface Challenge {
  challenge_id: string;
  factors: string[];
  expires_in: number;
}

describe('second factors', () => {
  const idp = new TestIdp();
  let api: TestApi;
  const secrets: string[] = [CODE];

  before(async () => {
    await idp.start();
    idp.users.set('sso-mia', { password: 'mia idp password', role: 'user', subject: 'sub-mia' });
    api = await startApi({
      auth: RELAXED,
      captureLogs: true,
      config: { plugins: { 'auth-local': {}, 'quota-default': {}, [FIXTURE_PLUGIN]: { idp: idp.url, code: CODE, mfaUsers: ['mfa-local', 'mfa-off', 'sso-mia'] } } },
    });
    await api.createUser('mfa-local', 'mfa local password');
    await api.createUser('mfa-off', 'mfa off password');
    await api.createUser('plain-local', 'plain local password');
  });
  after(async () => {
    await api?.close();
    await idp.close();
  });

  /** The 401 a first factor answers, checked to the byte shape; returns the challenge. */
  function challengeOf(r: ApiResponse): Challenge {
    assert.equal(r.status, 401, r.text);
    const body = r.json as { error: { code: string; message: string; details: Challenge } };
    assert.deepEqual(body, {
      error: { code: 'AUTH_SECOND_FACTOR_REQUIRED', message: 'a second factor is required', details: { ...body.error.details, factors: ['test-code'], expires_in: 300 } },
    });
    assert.match(body.error.details.challenge_id, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(!('access_token' in (r.json as object)));
    secrets.push(body.error.details.challenge_id);
    return body.error.details;
  }
  const passwordLogin = (username: string, password: string) => api.request('POST', '/v1/login', { body: { username, password } });
  const answer = (challengeId: string, response: string, factor = 'test-code') =>
    api.request('POST', '/v1/login/second-factor', { body: { challenge_id: challengeId, factor, response } });
  const code = (r: ApiResponse) => `${r.status} ${errorCode(r) ?? ''}`.trim();

  it('logs in a user no factor applies to with the password alone', async () => {
    const r = await passwordLogin('plain-local', 'plain local password');
    assert.equal(r.status, 200, r.text);
  });

  it('asks for the second factor after the password, then issues tokens for the right code', async () => {
    const c = challengeOf(await passwordLogin('mfa-local', 'mfa local password'));
    const r = await answer(c.challenge_id, CODE);
    assert.equal(r.status, 200, r.text);
    const pair = r.json as TokenPair;
    assert.deepEqual(Object.keys(pair).sort(), ['access_token', 'expires_in', 'refresh_expires_at', 'refresh_token', 'token_type']);
    secrets.push(pair.access_token, pair.refresh_token);
    assert.equal(((await api.request('GET', '/v1/me', { token: pair.access_token })).json as { username: string }).username, 'mfa-local');
    const success = (await auditRows(api, 'authn_login_success'))[0];
    assert.equal(success?.details.factor, 'test-code');
    assert.equal(success?.details.provider, 'auth-local');
    assert.equal(code(await answer(c.challenge_id, CODE)), '401 AUTH_CHALLENGE_INVALID', 'single use');
  });

  it('counts wrong codes down to the last try, then ends the challenge', async () => {
    const c = challengeOf(await passwordLogin('mfa-local', 'mfa local password'));
    for (const left of [4, 3, 2, 1, 0]) {
      const r = await answer(c.challenge_id, '000000');
      assert.equal(code(r), '401 AUTH_SECOND_FACTOR_INVALID');
      assert.deepEqual((r.json as { error: { details: unknown } }).error.details, { attempts_left: left });
    }
    assert.equal(code(await answer(c.challenge_id, CODE)), '401 AUTH_CHALLENGE_INVALID', 'out of tries, even with the right code');
    const refusals = (await auditRows(api, 'authn_login_fail')).slice(0, 6);
    assert.equal(refusals[0]?.details.reason, 'challenge-invalid');
    const wrong = refusals.slice(1);
    assert.deepEqual(
      wrong.map((row) => [row.target, row.details.reason, row.details.factor, row.details.attemptsLeft]),
      [0, 1, 2, 3, 4].map((left) => ['mfa-local', 'wrong-code', 'test-code', left]),
    );
  });

  it('refuses a factor the challenge did not offer, spending a try', async () => {
    const c = challengeOf(await passwordLogin('mfa-local', 'mfa local password'));
    const r = await answer(c.challenge_id, CODE, 'totp');
    assert.equal(code(r), '401 AUTH_SECOND_FACTOR_INVALID');
    assert.deepEqual((r.json as { error: { details: unknown } }).error.details, { attempts_left: 4 });
    assert.equal((await answer(c.challenge_id, CODE)).status, 200);
  });

  for (const [desc, challengeId] of [
    ['an unknown challenge', randomBytes(32).toString('base64url')],
    ['a malformed challenge', 'not-a-challenge'],
  ] as const) {
    it(`refuses ${desc}: 401 AUTH_CHALLENGE_INVALID, audited`, async () => {
      assert.equal(code(await answer(challengeId, CODE)), '401 AUTH_CHALLENGE_INVALID');
      assert.equal((await auditRows(api, 'authn_login_fail'))[0]?.details.reason, 'challenge-invalid');
    });
  }

  for (const [desc, body] of [
    ['an extra field', { challenge_id: 'x', factor: 'test-code', response: CODE, remember: true }],
    ['no response', { challenge_id: 'x', factor: 'test-code' }],
    ['a number as response', { challenge_id: 'x', factor: 'test-code', response: 246810 }],
  ] as const) {
    it(`refuses a body with ${desc}: 400 VALIDATION_FAILED`, async () => {
      assert.equal(code(await api.request('POST', '/v1/login/second-factor', { body })), '400 VALIDATION_FAILED');
    });
  }

  it('refuses the challenge of an account disabled since the password', async () => {
    const c = challengeOf(await passwordLogin('mfa-off', 'mfa off password'));
    const users = (await api.request('GET', '/v1/users?limit=100', { token: await api.adminToken() })).json as { items: { id: string; username: string }[] };
    const id = users.items.find((u) => u.username === 'mfa-off')?.id;
    assert.equal((await api.request('PATCH', `/v1/users/${id}`, { token: await api.adminToken(), body: { disabled: true } })).status, 200);
    assert.equal(code(await answer(c.challenge_id, CODE)), '401 AUTH_CHALLENGE_INVALID');
    assert.equal((await auditRows(api, 'authn_login_fail'))[0]?.details.reason, 'disabled');
  });

  it('asks for the second factor after a redirect flow (provisioned account), then logs in', async () => {
    idp.signedIn = 'sso-mia';
    const c = challengeOf((await browserLogin(api)).res);
    const r = await answer(c.challenge_id, CODE);
    assert.equal(r.status, 200, r.text);
    const success = (await auditRows(api, 'authn_login_success'))[0];
    assert.deepEqual([success?.details.flow, success?.details.provider, success?.details.factor], ['test-sso', 'auth-flows-test', 'test-code']);
  });

  it('asks for the second factor after a device flow; the device id is finished', async () => {
    const start = (await api.request('POST', '/v1/auth/flows/test-sso/device')).json as { device_id: string; user_code: string };
    secrets.push(start.device_id);
    idp.approve(start.user_code, 'sso-mia');
    const poll = () => api.request('POST', '/v1/auth/flows/test-sso/device/poll', { body: { device_id: start.device_id } });
    const c = challengeOf(await poll());
    assert.equal(code(await poll()), '400 EXPIRED_TOKEN');
    assert.equal((await answer(c.challenge_id, CODE)).status, 200);
  });

  it('wrote no code, challenge id or token to the logs', () => {
    assert.ok(secrets.length > 5);
    assert.deepEqual(
      secrets.filter((s) => api.logs.some((line) => line.includes(s))),
      [],
    );
  });
});

describe('a failing second factor', () => {
  let api: TestApi;
  const idp = new TestIdp();
  before(async () => {
    await idp.start();
    api = await startApi({
      auth: RELAXED,
      captureLogs: true,
      config: { plugins: { 'auth-local': {}, 'quota-default': {}, [FIXTURE_PLUGIN]: { idp: idp.url, factorFault: 'throw' } } },
    });
  });
  after(async () => {
    await api?.close();
    await idp.close();
  });

  it('counts as required (fail closed): no token, the error logged with the plugin name', async () => {
    const r = await api.request('POST', '/v1/login', { body: { username: 'root-admin', password: 'Bootstrap-Admin-Pass-1' } });
    assert.equal(r.status, 401, r.text);
    assert.equal(errorCode(r), 'AUTH_SECOND_FACTOR_REQUIRED');
    const line = api.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.plugin === 'auth-flows-test' && l.call === 'test-code.required');
    assert.ok(line, 'the failure is logged with the plugin');
  });
});

describe('second factors under the default login throttle', () => {
  let api: TestApi;
  const idp = new TestIdp();
  before(async () => {
    await idp.start();
    api = await startApi({ config: { plugins: { 'auth-local': {}, 'quota-default': {}, [FIXTURE_PLUGIN]: { idp: idp.url, code: CODE, mfaUsers: ['mfa-slow'] } } } });
    await api.createUser('mfa-slow', 'mfa slow password');
  });
  after(async () => {
    await api?.close();
    await idp.close();
  });

  it('delays wrong codes like wrong passwords (429 with Retry-After); the challenge still works after the delay', async () => {
    const first = await api.request('POST', '/v1/login', { body: { username: 'mfa-slow', password: 'mfa slow password' } });
    assert.equal(errorCode(first), 'AUTH_SECOND_FACTOR_REQUIRED');
    const { challenge_id: challengeId } = (first.json as { error: { details: Challenge } }).error.details;
    const wrong = () => api.request('POST', '/v1/login/second-factor', { body: { challenge_id: challengeId, factor: 'test-code', response: '000000' } });
    assert.deepEqual((await wrong()).json, { error: { code: 'AUTH_SECOND_FACTOR_INVALID', message: 'the second factor was not accepted', details: { attempts_left: 4 } } });
    assert.equal(errorCode(await wrong()), 'AUTH_SECOND_FACTOR_INVALID', 'one free failure, then delays start');
    const limited = await wrong();
    assert.equal(limited.status, 429, limited.text);
    assert.equal(errorCode(limited), 'RATE_LIMITED');
    assert.match(String(limited.headers['retry-after']), /^[1-9]\d*$/);
    let last = limited;
    await until(async () => {
      last = await api.request('POST', '/v1/login/second-factor', { body: { challenge_id: challengeId, factor: 'test-code', response: CODE } });
      return last.status !== 429;
    }, 10_000);
    assert.equal(last.status, 200, last.text);
  });
});
