import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { HackStream } from '../../server/app.js';
import type { RedisKv } from '../../core/store/kv-redis.js';
import { errorCode, FAST_ARGON2, request, startApi, type TestApi } from '../helpers/api.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/store.js';

/*
 * The per-process principal cache (core/auth/principal-cache.ts) against the revocation
 * figure: a change that ends a token is refused on the very next request to the process that
 * made it, and within 1 s on another process sharing the database and Redis (pub/sub), also
 * when the message is lost (the cache's TTL). Real Postgres, Redis and TLS through the gateway.
 */

const POLL_MS = 25;
const LIMIT_MS = 1_000;

/** Waits until the cache serves (its invalidation channel is live). */
async function cacheActive(app: HackStream): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!app.control.principals.active) {
    if (Date.now() > deadline) throw new Error('the principal cache did not become active');
    await sleep(10);
  }
}

/** Polls `probe` every 25 ms until it is true; returns the delay since `since` (ms). Fails after 3 s. */
async function delayUntil(since: number, probe: () => Promise<boolean>): Promise<number> {
  for (;;) {
    if (await probe()) return performance.now() - since;
    if (performance.now() - since > 3_000) throw new Error('not seen within 3 s');
    await sleep(POLL_MS);
  }
}

/** A GET with a token; the status. */
async function status(gw: Pick<TestGateway, 'port' | 'ca'>, path: string, token: string): Promise<number> {
  return (await request(gw, 'GET', path, { token })).status;
}

for (const kv of ['redis', 'memory'] as const) {
  describe(`principal cache, one process (postgres + ${kv})`, () => {
    let api: TestApi;
    before(async () => {
      api = await startApi({ db: 'postgres', kv });
      await cacheActive(api.gw.app);
    });
    after(async () => {
      await api?.close();
    });

    /** A fresh user, logged in, whose token this process has just cached. */
    async function cachedUser(name: string, extra: Record<string, unknown> = {}) {
      const id = await api.createUser(name, `${name} long password`, extra);
      const pair = await api.login(name, `${name} long password`);
      assert.equal(await status(api.gw, '/v1/me', pair.access_token), 200);
      assert.ok(api.gw.app.control.principals.size > 0, 'the principal is cached');
      return { id, pair };
    }

    const changes = [
      { what: 'disable', patch: { disabled: true } },
      { what: 'password reset', patch: { password: 'a brand new password 9' } },
      { what: 'role change (user → admin)', patch: { role: 'admin' } },
    ];
    for (const c of changes) {
      it(`refuses the token on the very next request after a ${c.what}`, async () => {
        const { id, pair } = await cachedUser(`one-${kv}-${c.what.replace(/\W+/g, '')}`);
        const r = await api.request('PATCH', `/v1/users/${id}`, { token: await api.adminToken(), body: c.patch });
        assert.equal(r.status, 200, r.text);
        const me = await api.request('GET', '/v1/me', { token: pair.access_token });
        assert.equal(me.status, 401);
        assert.equal(errorCode(me), 'AUTH_REQUIRED');
      });
    }

    it('refuses the token on the very next request after logout', async () => {
      const { pair } = await cachedUser(`one-${kv}-logout`);
      assert.equal((await api.request('POST', '/v1/logout', { token: pair.access_token })).status, 204);
      assert.equal(await status(api.gw, '/v1/me', pair.access_token), 401);
    });

    it('refuses the token on the very next request after refresh-token reuse ends the login', async () => {
      const { pair } = await cachedUser(`one-${kv}-reuse`);
      const first = await api.request('POST', '/v1/token/refresh', { body: { refresh_token: pair.refresh_token } });
      assert.equal(first.status, 200, first.text);
      const fresh = (first.json as { access_token: string }).access_token;
      assert.equal(await status(api.gw, '/v1/me', fresh), 200);
      const reuse = await api.request('POST', '/v1/token/refresh', { body: { refresh_token: pair.refresh_token } });
      assert.equal(reuse.status, 401);
      assert.equal(await status(api.gw, '/v1/me', pair.access_token), 401);
      assert.equal(await status(api.gw, '/v1/me', fresh), 401);
    });

    it('shows a quota change in /v1/me on the very next request', async () => {
      const { id, pair } = await cachedUser(`one-${kv}-quota`);
      const r = await api.request('PATCH', `/v1/users/${id}`, { token: await api.adminToken(), body: { quota: { max_sessions: 3 } } });
      assert.equal(r.status, 200, r.text);
      const me = await api.request('GET', '/v1/me', { token: pair.access_token });
      assert.equal(me.status, 200);
      assert.deepEqual((me.json as { quota: unknown }).quota, { max_sessions: 3 });
    });
  });
}

describe('principal cache across two processes (shared Postgres schema and Redis prefix)', () => {
  let a: TestApi;
  let b: TestGateway;
  let bDir: string;

  before(async () => {
    a = await startApi({ db: 'postgres', kv: 'redis' });
    bDir = mkdtempSync(join(tmpdir(), 'hs-cache-b-'));
    b = await startGateway(
      { databaseUrl: TEST_DATABASE_URL, redisUrl: TEST_REDIS_URL, redisPrefix: a.redisPrefix },
      { dataDir: bDir, app: { databaseSchema: a.schema, auth: { argon2: FAST_ARGON2 } } },
    );
    await cacheActive(a.gw.app);
    await cacheActive(b.app);
  });
  after(async () => {
    await b?.close();
    if (bDir) rmSync(bDir, { recursive: true, force: true });
    await a?.close();
  });

  /** A user logged in through A whose token B has just cached (and serves). */
  async function cachedOnB(name: string, role: 'user' | 'admin' = 'user') {
    const id = await a.createUser(name, `${name} long password`, { role });
    const pair = await a.login(name, `${name} long password`);
    assert.equal(await status(b, '/v1/me', pair.access_token), 200);
    assert.ok(b.app.control.principals.size > 0, 'B caches the principal');
    return { id, token: pair.access_token };
  }

  it('B refuses a user disabled through A within 1 s', async (t) => {
    const { id, token } = await cachedOnB('x-disabled');
    const since = performance.now();
    assert.equal((await a.request('PATCH', `/v1/users/${id}`, { token: await a.adminToken(), body: { disabled: true } })).status, 200);
    const ms = await delayUntil(since, async () => (await status(b, '/v1/me', token)) === 401);
    t.diagnostic(`disable seen on B after ${ms.toFixed(0)} ms (PATCH included)`);
    assert.ok(ms < LIMIT_MS, `${ms} ms`);
  });

  it('an admin demoted through A loses the admin routes on B within 1 s', async (t) => {
    const { id, token } = await cachedOnB('x-demoted', 'admin');
    assert.equal(await status(b, '/v1/users', token), 200);
    const since = performance.now();
    assert.equal((await a.request('PATCH', `/v1/users/${id}`, { token: await a.adminToken(), body: { role: 'user' } })).status, 200);
    const ms = await delayUntil(since, async () => (await status(b, '/v1/users', token)) !== 200);
    t.diagnostic(`role change seen on B after ${ms.toFixed(0)} ms`);
    assert.ok(ms < LIMIT_MS, `${ms} ms`);
    assert.equal(await status(b, '/v1/users', token), 401, 'the role change ended the token');
  });

  it('B refuses a token logged out through A within 1 s', async (t) => {
    const { token } = await cachedOnB('x-logout');
    const since = performance.now();
    assert.equal((await a.request('POST', '/v1/logout', { token })).status, 204);
    const ms = await delayUntil(since, async () => (await status(b, '/v1/me', token)) === 401);
    t.diagnostic(`logout seen on B after ${ms.toFixed(0)} ms`);
    assert.ok(ms < LIMIT_MS, `${ms} ms`);
  });

  it('with no message at all (a change made in the database directly) both see it within 1 s: the TTL bound', async (t) => {
    const { id, token } = await cachedOnB('x-direct');
    assert.equal(await status(a.gw, '/v1/me', token), 200);
    const client = new pg.Client({ connectionString: a.databaseUrl });
    await client.connect();
    const since = performance.now();
    try {
      await client.query('UPDATE users SET disabled = true, token_epoch = token_epoch + 1 WHERE id = $1', [id]);
    } finally {
      await client.end();
    }
    const [onA, onB] = await Promise.all([
      delayUntil(since, async () => (await status(a.gw, '/v1/me', token)) === 401),
      delayUntil(since, async () => (await status(b, '/v1/me', token)) === 401),
    ]);
    t.diagnostic(`direct change seen after ${onA.toFixed(0)} ms (A), ${onB.toFixed(0)} ms (B)`);
    assert.ok(onA < LIMIT_MS && onB < LIMIT_MS, `${onA} / ${onB} ms`);
  });

  it('B refuses within 1 s when its subscriber connection is cut as the change is published, and listens again', async (t) => {
    const { id, token } = await cachedOnB('x-cut');
    const raw = new Redis(TEST_REDIS_URL);
    let since: number;
    try {
      const name = (b.app.kv as RedisKv).subscriberName;
      const line = String(await raw.client('LIST')).split('\n').find((l) => l.includes(` name=${name} `));
      const clientId = line?.match(/^id=(\d+) /)?.[1];
      assert.ok(clientId, 'B subscribes on its own named connection');
      since = performance.now();
      await Promise.all([raw.client('KILL', 'ID', clientId), a.request('PATCH', `/v1/users/${id}`, { token: await a.adminToken(), body: { disabled: true } })]);
    } finally {
      raw.disconnect();
    }
    const ms = await delayUntil(since, async () => (await status(b, '/v1/me', token)) === 401);
    t.diagnostic(`disable seen on B after ${ms.toFixed(0)} ms with its subscriber cut`);
    assert.ok(ms < LIMIT_MS, `${ms} ms`);
    await cacheActive(b.app);
    // Listening again: the next change reaches B through pub/sub as before.
    const next = await cachedOnB('x-after-cut');
    const since2 = performance.now();
    assert.equal((await a.request('PATCH', `/v1/users/${next.id}`, { token: await a.adminToken(), body: { disabled: true } })).status, 200);
    const ms2 = await delayUntil(since2, async () => (await status(b, '/v1/me', next.token)) === 401);
    assert.ok(ms2 < LIMIT_MS, `${ms2} ms`);
  });
});
