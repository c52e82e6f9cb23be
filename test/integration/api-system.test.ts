import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';
import { startFaultProxy, TEST_DATABASE_URL, TEST_REDIS_URL, type FaultProxy } from '../helpers/store.js';

/*
 * /health says the process is up; /ready says the database and the key-value store answer
 * (each a check in the body).
 * Postgres and Redis are reached through fault proxies so they can be "lost" without
 * touching the servers other tests share.
 */

describe('health and readiness', () => {
  let api: TestApi;
  let pgProxy: FaultProxy;
  let redisProxy: FaultProxy;
  before(async () => {
    const pgUrl = new URL(TEST_DATABASE_URL);
    const redisUrl = new URL(TEST_REDIS_URL);
    pgProxy = await startFaultProxy(Number(pgUrl.port || 5432), pgUrl.hostname);
    redisProxy = await startFaultProxy(Number(redisUrl.port || 6379), redisUrl.hostname);
    pgUrl.port = String(pgProxy.port);
    redisUrl.port = String(redisProxy.port);
    api = await startApi({ db: 'postgres', kv: 'redis', config: { databaseUrl: pgUrl.toString(), redisUrl: redisUrl.toString() } });
    await api.adminToken();
  });
  after(async () => {
    await api?.close();
    await pgProxy?.close();
    await redisProxy?.close();
  });

  it('is ready when both answer', async () => {
    // Without sessionsReadiness (the runtime's checks: test/integration/ready.test.ts) only the stores are asked.
    assert.deepEqual((await api.request('GET', '/ready')).json, { status: 'ready', checks: { store: { ok: true }, kv: { ok: true } } });
    assert.deepEqual((await api.request('GET', '/health')).json, { status: 'ok' });
  });

  for (const lost of ['kv', 'database'] as const) {
    it(`answers 503 NOT_READY naming the ${lost} when it is gone; /health stays 200; logins fail closed; recovers`, async () => {
      const proxy = lost === 'kv' ? redisProxy : pgProxy;
      proxy.setMode('refuse');
      try {
        const t = Date.now();
        const r = await api.request('GET', '/ready');
        assert.ok(Date.now() - t < 3_000, 'the probe is bounded');
        assert.equal(r.status, 503);
        assert.equal(errorCode(r), 'NOT_READY');
        assert.match((r.json as { error: { message: string } }).error.message, lost === 'kv' ? /kv: / : /store: /);
        const checks = (r.json as { checks: Record<string, { ok: boolean }> }).checks;
        assert.deepEqual([checks.store?.ok, checks.kv?.ok], lost === 'kv' ? [true, false] : [false, true]);
        assert.equal((await api.request('GET', '/health')).status, 200);
        const login = await api.request('POST', '/v1/login', { body: { username: 'root-admin', password: 'Bootstrap-Admin-Pass-1' } });
        assert.equal(login.status, 503, login.text);
        assert.ok(!login.text.includes(' at '), 'no stack trace in the body');
      } finally {
        proxy.setMode('pass');
      }
      const deadline = Date.now() + 10_000;
      let ready = 0;
      while (Date.now() < deadline && ready !== 200) {
        ready = (await api.request('GET', '/ready')).status;
        if (ready !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(ready, 200, 'ready again');
      assert.equal((await api.request('POST', '/v1/login', { body: { username: 'root-admin', password: 'Bootstrap-Admin-Pass-1' } })).status, 200);
    });
  }
});
