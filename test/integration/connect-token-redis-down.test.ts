import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { ConnectDescriptor } from '../../core/sessions/view.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { freePort } from '../helpers/net.js';
import { killRedisServer, startRedisServer } from '../helpers/redis.js';
import { cleanupSessions, launch, target, testSessions } from '../helpers/sessions.js';
import { xpraClient } from '../helpers/xpra.js';

/*
 * Connect tokens issued before a Redis outage (docs/decisions.md, issue 12): Redis only gates
 * issuing them; the session's xpra checks and spends them. So while Redis is down a spent token
 * stays refused, and one issued before the outage and still unspent lets its holder in once.
 * The real engine, Firefox image and xpra client, and a redis-server of this test's own.
 */

describe('connect tokens while Redis is down', () => {
  const sessions = testSessions();
  let api: TestApi;
  let redis: ChildProcess;

  before(async () => {
    const port = await freePort();
    redis = await startRedisServer(port);
    // kv 'memory' for the helper (nothing to clean on the shared Redis); the app uses this redis-server.
    api = await startApi({ db: 'postgres', config: { sessions, redisUrl: `redis://127.0.0.1:${port}` } });
  });
  after(async () => {
    if (redis) await killRedisServer(redis);
    await api?.close().catch(() => {});
    await cleanupSessions(sessions);
  });

  it('keeps refusing a spent token and honours an unspent one exactly once', async () => {
    const admin = await api.adminToken();
    const s = await launch(api, admin);
    assert.equal((await xpraClient('info', target(api, s.connect))).code, 0, 'control: the first token lets xpra in');
    const r = await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: admin });
    assert.equal(r.status, 200, r.text);
    const unspent = r.json as ConnectDescriptor;

    await killRedisServer(redis);
    const refused = await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: admin });
    assert.equal(refused.status, 503, `control: Redis is down for the app (${refused.text})`);

    assert.notEqual((await xpraClient('info', target(api, s.connect))).code, 0, 'the spent token opens nothing');
    assert.equal((await xpraClient('info', target(api, unspent))).code, 0, 'the unspent token issued before the outage lets its holder in');
    assert.notEqual((await xpraClient('info', target(api, unspent))).code, 0, 'and is spent by that use: single use holds during the outage');
  });
});
