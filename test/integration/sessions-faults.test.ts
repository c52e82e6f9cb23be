import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LABELS } from '../../core/sessions/runtime.js';
import type { ConnectDescriptor, SessionView } from '../../core/sessions/view.js';
import { ADMIN, errorCode, request, startApi, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { killRedisServer, startRedisServer } from '../helpers/redis.js';
import { cleanupSessions, containersOf, docker, launch, target, testSessions, type CreatedSession } from '../helpers/sessions.js';
import { xpraClient } from '../helpers/xpra.js';

describe('faults: Redis killed mid-traffic', () => {
  const sessions = testSessions();
  let api: TestApi;
  let redis: ChildProcess;
  let redisPort: number;

  before(async () => {
    redisPort = await freePort();
    redis = await startRedisServer(redisPort);
    api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions, redisUrl: `redis://127.0.0.1:${redisPort}` } });
  });
  after(async () => {
    redis?.kill('SIGKILL');
    await api?.close().catch(() => {});
    await cleanupSessions(sessions);
  });

  it('fails connect tokens closed (503 fast, nothing issued) and recovers when Redis is back', async () => {
    const admin = await api.adminToken();
    const s = await launch(api, admin);
    assert.equal((await xpraClient('info', target(api, s.connect))).code, 0);

    await killRedisServer(redis);
    const t0 = Date.now();
    const r = await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: admin });
    const ms = Date.now() - t0;
    assert.equal(r.status, 503, r.text);
    assert.ok(!r.text.includes('hsc_'), 'no token in a refusal');
    assert.ok(ms < 10_000, `answered in ${ms} ms: a refusal, not a wait for Redis`);
    assert.equal((await api.request('POST', '/v1/sessions', { token: admin, body: { app: 'firefox' } })).status, 503);
    // Tokens issued before the outage: test/integration/connect-token-redis-down.test.ts.
    assert.equal((await api.request('GET', '/health')).status, 200, 'liveness is not tied to Redis');

    redis = await startRedisServer(redisPort);
    // This Redis kept nothing on disk, so access tokens died with it: log in again.
    let again: string | undefined;
    const loginBy = Date.now() + 20_000;
    while (!again && Date.now() < loginBy) again = await api.login(ADMIN.username, ADMIN.password).then((p) => p.access_token, () => undefined);
    assert.ok(again, 'logging in works again');
    const admin2 = again;
    let fresh: ConnectDescriptor | undefined;
    let last = '';
    const end = Date.now() + 20_000;
    while (!fresh && Date.now() < end) {
      const r2 = await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: admin2 });
      if (r2.status === 200) fresh = r2.json as ConnectDescriptor;
      else {
        last = `${r2.status} ${r2.text}`;
        await sleep(250);
      }
    }
    assert.ok(fresh, `connect works again once Redis is back (last answer: ${last})`);
    assert.equal((await xpraClient('info', target(api, fresh))).code, 0);
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: admin2 });
  });
});

/**
 * The Docker engine behind a TCP relay this test owns: cutting the relay makes the real
 * engine unreachable for this app only (the same failure as a dead dockerd or a lost link).
 */
class EngineRelay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Cut everything when a request line matches (e.g. the container start). */
  cutOn: RegExp | undefined;
  cut = false;
  constructor(readonly port: number) {}

  async open(): Promise<void> {
    this.cut = false;
    this.server = net.createServer((client) => {
      if (this.cut) return client.destroy();
      const upstream = net.connect('/var/run/docker.sock');
      this.sockets.add(client).add(upstream);
      client.on('data', (d: Buffer) => {
        if (this.cutOn && this.cutOn.test(d.toString('latin1', 0, 200))) {
          void this.close();
          return;
        }
        upstream.write(d);
      });
      upstream.pipe(client);
      for (const s of [client, upstream]) {
        s.on('error', () => {});
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
  }

  async close(): Promise<void> {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}

describe('faults: Docker engine unreachable during a create', () => {
  let relay: EngineRelay;
  // Reconciled every 2 s while running: the leftover container goes without a restart.
  const sessions = testSessions({ reconcileIntervalSeconds: 2 });
  let api: TestApi;

  before(async () => {
    relay = new EngineRelay(await freePort());
    await relay.open();
    api = await startApi({ db: 'postgres', kv: 'memory', config: { sessions: { ...sessions, dockerHost: `tcp://127.0.0.1:${relay.port}` } } });
  });
  after(async () => {
    await relay?.close();
    await api?.close().catch(() => {});
    await cleanupSessions(sessions);
  });

  it('answers 503 RUNTIME_UNAVAILABLE, leaves no row starting, and the running reconciler removes the leftover container (no restart)', async () => {
    const admin = await api.adminToken();
    relay.cutOn = /^POST \/(v[\d.]+\/)?containers\/[0-9a-f]+\/start/;
    const t0 = Date.now();
    const r = await api.request('POST', '/v1/sessions', { token: admin, body: { app: 'firefox' } });
    assert.equal(r.status, 503, r.text);
    assert.equal(errorCode(r), 'RUNTIME_UNAVAILABLE');
    // Plain words and a reference for the user; the engine's address stays in the server log.
    assert.match(r.text, /reference hs-[0-9a-f]{12}/);
    assert.doesNotMatch(r.text, /HACKSTREAM_DOCKER_HOST|docker|127\.0\.0\.1/i);
    assert.ok(Date.now() - t0 < 15_000);
    // While it stays down, launching fails fast too.
    const t1 = Date.now();
    const down = await api.request('POST', '/v1/sessions', { token: admin, body: { app: 'firefox' } });
    assert.equal(errorCode(down), 'RUNTIME_UNAVAILABLE');
    assert.ok(Date.now() - t1 < 5_000, `answered in ${Date.now() - t1} ms`);

    relay.cutOn = undefined;
    await relay.open();
    const end = Date.now() + 30_000;
    let rows: SessionView[] = [];
    while (Date.now() < end) {
      rows = ((await api.request('GET', '/v1/sessions?ended=1', { token: await api.adminToken() })).json as { items: SessionView[] }).items;
      if (rows.length > 0 && rows.every((x) => x.state === 'failed') && (await containersOf(sessions.instanceId)).length === 0) break;
      await sleep(250);
    }
    assert.ok(rows.length >= 1);
    assert.deepEqual(
      rows.map((x) => x.state),
      rows.map(() => 'failed'),
    );
    assert.deepEqual(await containersOf(sessions.instanceId), [], 'the created-but-never-started container is gone');
    // One correction per leftover container, audited against its session.
    const admin2 = await api.adminToken();
    const audited = (await api.request('GET', '/v1/audit?action=session_reconciled&limit=100', { token: admin2 })).json as { items: Array<{ target: string; details: { correction: string } }> };
    const failedIds = new Set(rows.map((x) => x.session_id));
    const corrections = audited.items.filter((i) => failedIds.has(i.target));
    assert.ok(corrections.length >= 1, 'the removal is audited');
    assert.ok(corrections.every((i) => i.details.correction === 'orphan-container'), JSON.stringify(corrections));
    assert.equal(new Set(corrections.map((i) => i.target)).size, corrections.length, 'one audit row per correction');
  });
});

describe('faults: a session row deleted by hand while its container runs', () => {
  const sessions = testSessions({ reconcileIntervalSeconds: 2 });
  let api: TestApi;
  before(async () => {
    api = await startApi({ db: 'postgres', kv: 'memory', config: { sessions } });
  });
  after(async () => {
    await api?.close().catch(() => {});
    await cleanupSessions(sessions);
  });

  it('the running reconciler removes its container and its route, audited, without a restart', async () => {
    const admin = await api.adminToken();
    const s = await launch(api, admin);
    assert.equal((await containersOf(sessions.instanceId)).filter((c) => c.Labels[LABELS.session] === s.session_id && c.State === 'running').length, 1);
    await api.gw.app.db.dataSource.query('DELETE FROM sessions WHERE id = $1', [s.session_id]);
    const end = Date.now() + 30_000;
    while ((await containersOf(sessions.instanceId)).some((c) => c.Labels[LABELS.session] === s.session_id)) {
      assert.ok(Date.now() < end, 'the container of the deleted row was not removed within 30 s');
      await sleep(250);
    }
    while (api.gw.app.routes.lookup(s.connect.sni)) {
      assert.ok(Date.now() < end, 'the route of the deleted row was not removed within 30 s');
      await sleep(250);
    }
    const r = await api.request('GET', `/v1/audit?user=${s.session_id}&action=session_reconciled`, { token: admin });
    const corrections = (r.json as { items: Array<{ details: { correction: string } }> }).items.map((i) => i.details.correction).sort();
    assert.deepEqual(corrections, ['row-missing', 'stale-route']);
    assert.equal((await api.request('GET', '/health')).status, 200);
  });
});

describe('faults: SIGKILL of the control plane, then a restart', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hs-kill-'));
  const sessions = testSessions();
  let port: number;
  let child: ChildProcess | undefined;
  const configFile = join(dataDir, 'config.json');
  after(async () => {
    child?.kill('SIGKILL');
    await cleanupSessions(sessions);
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function startServer(): Promise<void> {
    const log = openSync(join(dataDir, 'server.log'), 'a');
    child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../server/main.ts')], {
      env: { PATH: process.env.PATH ?? '', HACKSTREAM_CONFIG: configFile, HACKSTREAM_ADMIN_PASSWORD: 'kill test admin password' },
      stdio: ['ignore', log, log],
    });
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      const ok = await request({ port, ca: caPem() }, 'GET', '/health').then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
      await sleep(200);
    }
    throw new Error(`the server did not start:\n${readFileSync(join(dataDir, 'server.log'), 'utf8').slice(-2000)}`);
  }
  const caPem = () => {
    try {
      return readFileSync(join(dataDir, 'certs/ca.crt'), 'utf8');
    } catch {
      return '';
    }
  };

  before(async () => {
    port = await freePort();
    writeFileSync(
      configFile,
      JSON.stringify({ listen: `127.0.0.1:${port}`, publicHost: PUBLIC_HOST, sessionDomain: 'sessions.test', dataDir, log: { level: 'info' }, sessions }),
    );
  });

  it('loses no session and leaks no container', async () => {
    await startServer();
    const gw = () => ({ port, ca: caPem() });
    const login = async () => {
      const r = await request(gw(), 'POST', '/v1/login', { body: { username: 'admin', password: 'kill test admin password' } });
      assert.equal(r.status, 200, r.text);
      return (r.json as { access_token: string }).access_token;
    };
    let token = await login();
    const created = await request(gw(), 'POST', '/v1/sessions', { token, body: { app: 'firefox' } });
    assert.equal(created.status, 201, created.text);
    const s = created.json as CreatedSession;
    const t = { host: '127.0.0.1', port, sni: s.connect.sni, caPem: s.connect.ca_cert, token: s.connect.token };
    assert.equal((await xpraClient('info', t)).code, 0);
    const before = (await containersOf(sessions.instanceId)).map((c) => c.Id).sort();
    assert.equal(before.length, 1);

    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    await startServer();
    token = await login();
    const after = (await containersOf(sessions.instanceId)).map((c) => c.Id).sort();
    assert.deepEqual(after, before, 'the same container, none leaked, none lost');
    const view = (await request(gw(), 'GET', `/v1/sessions/${s.session_id}`, { token })).json as SessionView;
    assert.ok(['ready', 'idle'].includes(view.state), `adopted, state ${view.state}`);
    let connect: ConnectDescriptor | undefined;
    const end = Date.now() + 20_000;
    while (!connect && Date.now() < end) {
      const r = await request(gw(), 'POST', `/v1/sessions/${s.session_id}/connect`, { token });
      if (r.status === 200) connect = r.json as ConnectDescriptor;
      else await sleep(250);
    }
    assert.ok(connect);
    assert.equal((await xpraClient('info', { ...t, token: connect.token })).code, 0, 'the adopted session is routed again');
    const stop = await request(gw(), 'POST', `/v1/sessions/${s.session_id}/stop`, { token });
    assert.equal((stop.json as SessionView).state, 'stopped');
    assert.deepEqual(
      (await containersOf(sessions.instanceId)).filter((c) => c.Labels[LABELS.session] === s.session_id),
      [],
    );
    child!.kill('SIGTERM');
    await new Promise((r) => (child!.exitCode === null ? child!.once('exit', r) : r(null)));
  });

  it('after a restart marks a session whose container vanished meanwhile stopped (audited), and adopts the other', async () => {
    await startServer();
    const gw = () => ({ port, ca: caPem() });
    const login = async () =>
      ((await request(gw(), 'POST', '/v1/login', { body: { username: 'admin', password: 'kill test admin password' } })).json as { access_token: string }).access_token;
    let token = await login();
    const launched: CreatedSession[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await request(gw(), 'POST', '/v1/sessions', { token, body: { app: 'firefox' } });
      assert.equal(r.status, 201, r.text);
      launched.push(r.json as CreatedSession);
    }
    const [gone, kept] = launched as [CreatedSession, CreatedSession];
    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    const [container] = (await containersOf(sessions.instanceId)).filter((c) => c.Labels[LABELS.session] === gone.session_id);
    assert.ok(container);
    await docker.getContainer(container.Id).remove({ force: true });
    await startServer();
    token = await login();
    let view: SessionView | undefined;
    const end = Date.now() + 20_000;
    while (view?.state !== 'stopped' && Date.now() < end) {
      view = (await request(gw(), 'GET', `/v1/sessions/${gone.session_id}`, { token })).json as SessionView;
      if (view.state !== 'stopped') await sleep(250);
    }
    assert.equal(view?.state, 'stopped', 'the vanished container’s session is stopped');
    const audit = await request(gw(), 'GET', `/v1/audit?user=${gone.session_id}&action=session_stopped`, { token });
    assert.equal((audit.json as { items: Array<{ details: { reason: string } }> }).items[0]?.details.reason, 'reconciled');
    const other = (await request(gw(), 'GET', `/v1/sessions/${kept.session_id}`, { token })).json as SessionView;
    assert.ok(['ready', 'idle'].includes(other.state), `the other is adopted, state ${other.state}`);
    await request(gw(), 'POST', `/v1/sessions/${kept.session_id}/stop`, { token });
    child!.kill('SIGTERM');
  });
});

describe('faults: no Docker engine at all', () => {
  const sessions = testSessions();
  let api: TestApi;
  before(async () => {
    api = await startApi({ config: { sessions: { ...sessions, dockerHost: 'unix:///run/hackstream-test-no-such-docker.sock' } } });
  });
  after(async () => {
    await api?.close();
  });

  it('answers a launch with 503 RUNTIME_UNAVAILABLE in plain words with a reference (how to install or point at an engine is in the log), quickly', async () => {
    const t0 = Date.now();
    const r = await api.request('POST', '/v1/sessions', { token: await api.adminToken(), body: { app: 'firefox' } });
    assert.equal(r.status, 503, r.text);
    assert.equal(errorCode(r), 'RUNTIME_UNAVAILABLE');
    assert.match(r.text, /the host could not start your session; try again or tell your operator, reference hs-[0-9a-f]{12}/);
    assert.doesNotMatch(r.text, /hackstream-test-no-such-docker\.sock|apt-get/, 'the engine socket and the operator hint stay in the log');
    assert.ok(Date.now() - t0 < 5_000);
    const list = await api.request('GET', '/v1/sessions?ended=1', { token: await api.adminToken() });
    assert.deepEqual((list.json as { items: unknown[] }).items, [], 'no session row was left behind');
    assert.equal((await api.request('GET', '/health')).status, 200);
  });
});
