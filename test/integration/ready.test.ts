import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { errorCode, request, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { freePort, sleep } from '../helpers/net.js';
import { spawnHackstream, waitForLine, type HackstreamProcess } from '../helpers/server-process.js';
import { cleanupSessions, testSessions } from '../helpers/sessions.js';
import { startFaultProxy, TEST_REDIS_URL, type FaultProxy } from '../helpers/store.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * GET /ready on a node that runs sessions: store, KV, agent, engine, image, network and
 * firewall, each failed for real (Redis behind a proxy that refuses, an engine address where
 * nothing listens, an image tag that does not exist, the agent process SIGSTOPped), and
 * /ready names the check that failed with its reason while /health stays 200.
 */

type Check = { ok: true } | { ok: false; reason: string };
interface ReadyBody {
  status: 'ready' | 'not_ready';
  checks: Record<string, Check>;
  error?: { code: string; message: string };
}

const ALL = ['store', 'kv', 'agent', 'engine', 'image', 'network', 'firewall'];
/** These tests poll /ready faster than a load balancer would (its limit: api-rate-limits.test.ts). */
const POLLING = { readyPerMinute: 1_000_000 };

const body = (r: ApiResponse) => r.json as ReadyBody;
const failed = (r: ApiResponse) => Object.entries(body(r).checks).filter(([, c]) => !c.ok).map(([name]) => name).sort();
const reason = (r: ApiResponse, name: string) => {
  const c = body(r).checks[name];
  return c && !c.ok ? c.reason : '';
};

/** Polls /ready until `pred` holds (the runtime is prepared in the background at start). */
async function readyWhen(get: () => Promise<ApiResponse>, pred: (r: ApiResponse) => boolean, what: string, ms = 180_000): Promise<ApiResponse> {
  const end = Date.now() + ms;
  let last: ApiResponse | undefined;
  while (Date.now() < end) {
    last = await get().catch(() => undefined);
    if (last && pred(last)) return last;
    await sleep(250);
  }
  throw new Error(`/ready: ${what} not seen within ${ms} ms; last: ${last?.status} ${last?.text.slice(0, 500)}`);
}

describe('/ready with every dependency up, then Redis refusing', () => {
  const sessions = testSessions();
  let proxy: FaultProxy;
  let api: TestApi;
  before(async () => {
    const redis = new URL(TEST_REDIS_URL);
    proxy = await startFaultProxy(Number(redis.port || 6379), redis.hostname);
    redis.port = String(proxy.port);
    api = await startApi({ db: 'postgres', kv: 'redis', sessionsReadiness: true, config: { sessions, redisUrl: redis.toString(), rateLimits: POLLING } });
  });
  after(async () => {
    await api?.close();
    await proxy?.close();
    await cleanupSessions(sessions);
  });

  it('is ready with all seven checks ok once the runtime is prepared', async () => {
    const r = await readyWhen(() => api.request('GET', '/ready'), (x) => x.status === 200, '200');
    assert.equal(body(r).status, 'ready');
    assert.deepEqual(Object.keys(body(r).checks).sort(), [...ALL].sort());
    assert.deepEqual(failed(r), []);
  });

  it('answers 503 NOT_READY naming only kv while Redis refuses connections; /health stays 200; recovers', async () => {
    proxy.setMode('refuse');
    try {
      const r = await readyWhen(() => api.request('GET', '/ready'), (x) => x.status === 503, '503');
      assert.equal(errorCode(r), 'NOT_READY');
      assert.equal(body(r).status, 'not_ready');
      assert.equal(r.headers['retry-after'], '5');
      assert.deepEqual(failed(r), ['kv']);
      assert.match(reason(r, 'kv'), /does not answer|did not answer/);
      assert.ok(!r.text.includes('redis://'), 'no URL in the body');
      assert.equal((await api.request('GET', '/health')).status, 200);
    } finally {
      proxy.setMode('pass');
    }
    await readyWhen(() => api.request('GET', '/ready'), (x) => x.status === 200, 'ready again', 30_000);
  });
});

describe('/ready with an engine address where nothing listens', () => {
  const sessions = testSessions();
  let api: TestApi;
  before(async () => {
    api = await startApi({ sessionsReadiness: true, config: { sessions: { ...sessions, dockerHost: `tcp://127.0.0.1:${await freePort()}` }, rateLimits: POLLING } });
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  it('names the engine, and the checks behind it as not checked', async () => {
    const r = await readyWhen(() => api.request('GET', '/ready'), (x) => x.status === 503, '503', 30_000);
    assert.deepEqual(failed(r), ['engine', 'firewall', 'image', 'network']);
    assert.ok(body(r).checks.agent?.ok, 'the agent answers');
    assert.ok(body(r).checks.store?.ok && body(r).checks.kv?.ok);
    assert.match(reason(r, 'image'), /not checked/);
    assert.equal((await api.request('GET', '/health')).status, 200);
  });
});

describe('/ready with a session image tag that does not exist', () => {
  const missing = `hackstream/firefox-xpra:missing-${randomBytes(4).toString('hex')}`;
  const sessions = testSessions({ image: missing });
  let api: TestApi;
  before(async () => {
    api = await startApi({ sessionsReadiness: true, config: { sessions, rateLimits: POLLING } });
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  it('names the image and its tag; the engine and the agent are fine', async () => {
    const r = await readyWhen(() => api.request('GET', '/ready'), (x) => x.status === 503 && reason(x, 'image') !== '', 'image failing', 30_000);
    assert.ok(reason(r, 'image').includes(missing), reason(r, 'image'));
    assert.ok(body(r).checks.engine?.ok && body(r).checks.agent?.ok);
    assert.ok(!failed(r).includes('store') && !failed(r).includes('kv'));
  });
});

describe('/ready when the agent process stops answering (npm start, agent SIGSTOPped)', () => {
  const scratch = scratchDirs('hs-ready-');
  const sessions = testSessions();
  let p: HackstreamProcess;
  let agentPid = 0;
  let port = 0;
  let ca = '';
  const get = () => request({ port, ca }, 'GET', '/ready');
  before(async () => {
    const dataDir = scratch();
    const configFile = join(dataDir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ listen: '127.0.0.1:0', publicHost: PUBLIC_HOST, sessionDomain: 'sessions.test', dataDir, sessions, rateLimits: POLLING }));
    p = spawnHackstream({ HACKSTREAM_CONFIG: configFile });
    port = (JSON.parse(await waitForLine(p, /"msg":"hackstream listening"/, 180_000)) as { port: number }).port;
    const line = await waitForLine(p, /"msg":"child ready".*"child":"agent"|"child":"agent".*"msg":"child ready"/, 60_000);
    agentPid = (JSON.parse(line) as { pid: number }).pid;
    ca = readFileSync(join(dataDir, 'certs/ca.crt'), 'utf8');
  });
  after(async () => {
    if (agentPid) process.kill(agentPid, 'SIGCONT');
    p?.child.kill('SIGTERM');
    await p?.exit;
    await cleanupSessions(sessions);
  });

  it('is ready, then names the agent (within the probe bound) while it is stopped, then is ready again', async () => {
    await readyWhen(get, (x) => x.status === 200, '200');
    process.kill(agentPid, 'SIGSTOP');
    try {
      const r = await readyWhen(get, (x) => x.status === 503, '503', 30_000);
      assert.deepEqual(failed(r), ['agent', 'engine', 'firewall', 'image', 'network']);
      assert.match(reason(r, 'agent'), /did not answer within/);
      assert.match(reason(r, 'engine'), /not checked: agent did not answer/);
      assert.equal((await request({ port, ca }, 'GET', '/health')).status, 200);
    } finally {
      process.kill(agentPid, 'SIGCONT');
    }
    await readyWhen(get, (x) => x.status === 200, 'ready again', 60_000);
  });
});
