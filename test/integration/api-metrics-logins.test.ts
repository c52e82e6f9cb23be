import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCode, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';
import { FIXTURE_PLUGIN } from '../fixtures/auth-flows/client.js';
import { TestIdp } from '../fixtures/auth-flows/idp.js';

/*
 * hackstream_logins_total by outcome, read from GET /v1/metrics of a running HackStream: a
 * password login, a wrong password, a throttled attempt, a login that needs a second factor
 * (the fixture plugin's `test-code`), a wrong and then the right code.
 */

const CODE = '135790';

describe('metrics: logins by outcome', () => {
  const idp = new TestIdp();
  let api: TestApi;
  before(async () => {
    await idp.start();
    api = await startApi({ config: { plugins: { 'auth-local': {}, 'quota-default': {}, [FIXTURE_PLUGIN]: { idp: idp.url, code: CODE, mfaUsers: ['m-mfa'] } } } });
    await api.createUser('m-plain', 'metrics plain password');
    await api.createUser('m-mfa', 'metrics mfa password');
    await api.createUser('m-throttled', 'metrics throttled password');
  });
  after(async () => {
    await api?.close();
    await idp.close();
  });

  async function outcomes(): Promise<Record<string, number>> {
    const r = await api.request('GET', '/v1/metrics', { token: await api.adminToken() });
    assert.equal(r.status, 200);
    const counts: Record<string, number> = {};
    for (const m of r.text.matchAll(/^hackstream_logins_total\{outcome="([a-z_]+)"\} (\d+)$/gm)) counts[m[1] ?? ''] = Number(m[2]);
    assert.deepEqual(Object.keys(counts).sort(), ['failure', 'second_factor_required', 'success', 'throttled']);
    return counts;
  }
  /** What moved while `step` ran (only the non-zero changes). */
  async function moved(step: () => Promise<void>): Promise<Record<string, number>> {
    const before = await outcomes();
    await step();
    const after = await outcomes();
    return Object.fromEntries(Object.entries(after).filter(([k, v]) => v !== before[k]).map(([k, v]) => [k, v - (before[k] ?? 0)]));
  }
  const login = (username: string, password: string) => api.request('POST', '/v1/login', { body: { username, password } });
  const expect = (r: ApiResponse, status: number, code?: string) => {
    assert.equal(r.status, status, r.text);
    if (code) assert.equal(errorCode(r), code);
  };

  it('a password login counts success; a wrong password counts failure', async () => {
    assert.deepEqual(await moved(async () => expect(await login('m-plain', 'metrics plain password'), 200)), { success: 1 });
    assert.deepEqual(await moved(async () => expect(await login('m-plain', 'not it'), 401, 'AUTH_INVALID_CREDENTIALS')), { failure: 1 });
  });

  it('an attempt refused by the throttle counts throttled (not failure)', async () => {
    // Wrong passwords until the account's budget refuses one (it does within a few).
    let failures = 0;
    const changed = await moved(async () => {
      for (let r = await login('m-throttled', 'wrong'); r.status !== 429; r = await login('m-throttled', 'wrong')) {
        expect(r, 401, 'AUTH_INVALID_CREDENTIALS');
        assert.ok(++failures < 20, 'the throttle refuses within 20 attempts');
      }
    });
    assert.deepEqual(changed, { throttled: 1, ...(failures > 0 ? { failure: failures } : {}) });
  });

  it('second factor: required, then a wrong code (failure), then the right one (success)', async () => {
    let challengeId = '';
    assert.deepEqual(
      await moved(async () => {
        const r = await login('m-mfa', 'metrics mfa password');
        expect(r, 401, 'AUTH_SECOND_FACTOR_REQUIRED');
        challengeId = (r.json as { error: { details: { challenge_id: string } } }).error.details.challenge_id;
      }),
      { second_factor_required: 1 },
    );
    const answer = (response: string) => api.request('POST', '/v1/login/second-factor', { body: { challenge_id: challengeId, factor: 'test-code', response } });
    assert.deepEqual(await moved(async () => expect(await answer('000000'), 401, 'AUTH_SECOND_FACTOR_INVALID')), { failure: 1 });
    // The account's one free failure is spent: wait out its short delay by polling, not sleeping a fixed time.
    let ok: ApiResponse | undefined;
    const changed = await moved(async () => {
      for (let i = 0; i < 100 && ok?.status !== 200; i++) {
        ok = await answer(CODE);
        if (ok.status === 429) await new Promise((r) => setTimeout(r, Number(ok!.headers['retry-after'] ?? 1) * 1000));
        else break;
      }
      expect(ok!, 200);
    });
    assert.equal(changed.success, 1);
    assert.deepEqual(Object.keys(changed).filter((k) => k !== 'throttled'), ['success']);
  });
});
