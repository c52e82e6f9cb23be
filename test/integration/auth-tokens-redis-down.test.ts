import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { ADMIN, errorCode, startApi, type TestApi, type TokenPair } from '../helpers/api.js';
import { freePort } from '../helpers/net.js';
import { killRedisServer, startRedisServer } from '../helpers/redis.js';

/*
 * Access and refresh tokens while Redis (the key-value store) is down, on a redis-server of
 * this test's own. Fail closed (docs/decisions.md): nothing is accepted that needs the store
 * to check, nothing is issued, and nothing the client holds is spent by a refusal — a refresh
 * token issued before the outage and still unspent is refused with 503 and works afterwards.
 * A spent one stays refused throughout.
 */

describe('tokens while Redis is down', () => {
  let api: TestApi;
  let redis: ChildProcess;
  let port: number;

  before(async () => {
    port = await freePort();
    redis = await startRedisServer(port);
    // kv 'memory' for the helper (no keys to clean up on the shared Redis); the app itself
    // uses this test's redis-server through redisUrl.
    api = await startApi({ db: 'postgres', config: { redisUrl: `redis://127.0.0.1:${port}` } });
  });
  after(async () => {
    if (redis) await killRedisServer(redis);
    await api?.close();
  });

  const refresh = (refreshToken: string) => api.request('POST', '/v1/token/refresh', { body: { refresh_token: refreshToken } });

  it('refuses a spent refresh token and an access token; keeps an unspent refresh token unspent until Redis is back', async () => {
    // Login 1: its first refresh token is spent by a refresh. Login 2: untouched.
    const first = await api.login(ADMIN.username, ADMIN.password);
    const rotated = await refresh(first.refresh_token);
    assert.equal(rotated.status, 200, rotated.text);
    const unspent = await api.login(ADMIN.username, ADMIN.password);
    assert.equal((await api.request('GET', '/v1/me', { token: unspent.access_token })).status, 200, 'control: the access token works');

    await killRedisServer(redis);

    const spent = await refresh(first.refresh_token);
    assert.equal(spent.status, 401, spent.text);
    assert.equal(errorCode(spent), 'AUTH_TOKEN_INVALID');

    const held = await refresh(unspent.refresh_token);
    assert.equal(held.status, 503, held.text);
    assert.ok(!held.text.includes('hsr_') && !held.text.includes('hsa_'), 'no token in a refusal');
    const me = await api.request('GET', '/v1/me', { token: unspent.access_token });
    assert.equal(me.status, 503, `an access token cannot be checked, so it is not accepted: ${me.text}`);

    redis = await startRedisServer(port);
    // The store came back empty: the access token died with it, the refresh token (a row in
    // Postgres) did not, and it was not spent by the refusal.
    let again: { status: number; text: string; json: unknown } = held;
    const until = Date.now() + 20_000;
    while (again.status === 503 && Date.now() < until) again = await refresh(unspent.refresh_token);
    assert.equal(again.status, 200, again.text);
    const pair = again.json as TokenPair;
    assert.equal((await api.request('GET', '/v1/me', { token: pair.access_token })).status, 200);
    // And it is spent now, like any refresh token used once.
    assert.equal(errorCode(await refresh(unspent.refresh_token)), 'AUTH_TOKEN_INVALID');
  });
});
