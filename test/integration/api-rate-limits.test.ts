import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { errorCode, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';

/*
 * The request limits of config.rateLimits through the real gateway (no containers: the
 * connects name sessions that do not exist, so the limit is seen to come before any lookup,
 * docker exec or audit row; session-connect-limit.test.ts runs them against a real session).
 * Client addresses are spread over 127/8.
 */

function refused(r: ApiResponse): void {
  assert.equal(r.status, 429, r.text);
  assert.equal(errorCode(r), 'RATE_LIMITED');
  const wait = Number(r.headers['retry-after']);
  assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `Retry-After ${String(r.headers['retry-after'])}`);
}

describe('GET /ready: limited per client address', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi({ config: { rateLimits: { readyPerMinute: 3 } } });
  });
  after(async () => {
    await api?.close();
  });

  it('answers the first readyPerMinute, then 429 RATE_LIMITED with Retry-After; another address and /health are not held', async () => {
    const from = { localAddress: '127.0.9.1' };
    for (let i = 0; i < 3; i++) assert.equal((await api.request('GET', '/ready', from)).status, 200);
    refused(await api.request('GET', '/ready', from));
    assert.equal((await api.request('GET', '/ready', { localAddress: '127.0.9.2' })).status, 200, 'another client is not held');
    assert.equal((await api.request('GET', '/health', from)).status, 200, '/health is not limited');
  });
});

describe('POST /v1/sessions/:id/connect: limited per user (Redis)', () => {
  let api: TestApi;
  let alice: string;
  let bob: string;
  before(async () => {
    api = await startApi({ db: 'postgres', kv: 'redis', config: { rateLimits: { connectPerMinute: 2 } } });
    await api.createUser('alice', 'Alice-Password-1234');
    await api.createUser('bob', 'Bobs-Password-12345');
    alice = (await api.login('alice', 'Alice-Password-1234')).access_token;
    bob = (await api.login('bob', 'Bobs-Password-12345')).access_token;
  });
  after(async () => {
    await api?.close();
  });

  it('refuses the user past connectPerMinute with 429 (whichever session, from any address), before any lookup; another user is not held', async () => {
    const connect = (token: string, localAddress = '127.0.9.3') => api.request('POST', `/v1/sessions/${randomUUID()}/connect`, { token, localAddress });
    assert.equal((await connect(alice)).status, 404);
    assert.equal((await connect(alice, '127.0.9.4')).status, 404);
    refused(await connect(alice, '127.0.9.5'));
    assert.equal((await connect(bob)).status, 404, 'bob has his own count');
    const audit = await api.request('GET', '/v1/audit?action=session_connect_token', { token: await api.adminToken() });
    assert.deepEqual((audit.json as { items: unknown[] }).items, [], 'nothing issued, nothing audited');
  });
});
