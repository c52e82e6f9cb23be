import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../core/sessions/runtime.js';
import type { SessionEvent } from '../../core/plugin/contract.js';
import type { SessionView } from '../../core/sessions/view.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { cleanupSessions, containersOf, docker, launch, target, testSessions, useSessionsApi, waitForSession } from '../helpers/sessions.js';
import { xpraClient } from '../helpers/xpra.js';
import { xpraAttach, type AttachedXpra } from '../helpers/xpra-attach.js';
import { startXvfb } from '../helpers/display.js';

async function auditActions(api: TestApi, sessionId: string): Promise<Array<{ action: string; details: Record<string, unknown> }>> {
  const r = await api.request('GET', `/v1/audit?user=${sessionId}&limit=100`, { token: await api.adminToken() });
  return (r.json as { items: Array<{ action: string; details: Record<string, unknown> }> }).items;
}

async function containerOf(instanceId: string, sessionId: string): Promise<string> {
  const c = (await containersOf(instanceId)).find((x) => x.Labels[LABELS.session] === sessionId);
  assert.ok(c, `session ${sessionId} has a container`);
  return c.Id;
}

/** Runs a command in a session's container as its user; resolves with the exit code. */
async function execIn(containerId: string, cmd: string[]): Promise<number | null> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: cmd, User: '1000:1000', AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise<void>((resolve) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', () => resolve());
    stream.resume();
  });
  return (await exec.inspect()).ExitCode;
}

describe('session lifecycle: idle timeout, maximum duration, pool, crashes, OOM, fork bomb', () => {
  // Idle sessions stop after 20 s: long enough for the OOM and fork-bomb cases to launch two
  // sessions and act on them on a very busy host (a cold launch takes ~5 s through the agent
  // on a quiet one, over 10 s at a load of 15 on two cores).
  const sessions = testSessions({ idleTimeoutCapSeconds: 20, sweepIntervalMs: 500, pool: { size: 1, memoryMb: 1024, cpus: 1 } });
  let api: TestApi;
  let user: string;

  before(async () => {
    api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions } });
    await api.createUser('carol', 'carol-password-1', { quota: { max_sessions: 4, memory_mb: 1024 } });
    user = (await api.login('carol', 'carol-password-1')).access_token;
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  it('claims a pre-warmed container from the pool, then refills the pool', async () => {
    const manager = api.gw.app.sessions;
    const end = Date.now() + 120_000;
    while (manager.poolSize() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    assert.equal(manager.poolSize(), 1, 'the pool filled');
    const pooledIds = (await containersOf(sessions.instanceId)).filter((c) => c.Labels[LABELS.pool] === '1').map((c) => c.Labels[LABELS.session]);
    const s = await launch(api, user, { app: 'firefox', url: 'http://example.org/' });
    assert.equal(s.pooled, true);
    assert.ok(pooledIds.includes(s.session_id), 'the session is the pool container');
    assert.equal((await xpraClient('info', target(api, s.connect))).code, 0, 'the claimed session lets the token in');
    // The claim applied the user's limits (1024 MiB) to the container.
    const info = await docker.getContainer(await containerOf(sessions.instanceId, s.session_id)).inspect();
    assert.equal(info.HostConfig.Memory, 1024 * 1024 * 1024);
    while (manager.poolSize() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    assert.equal(manager.poolSize(), 1, 'the pool refilled');
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: user });
    // Gone before the next test looks for the pool container: a claimed one keeps its pool label.
    await waitForSession(api, user, s.session_id, (v) => v.state === 'stopped', 30_000);
    while ((await containersOf(sessions.instanceId)).some((c) => c.Labels[LABELS.session] === s.session_id)) {
      assert.ok(Date.now() < end, 'the stopped session container was not removed');
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  it('starts cold when the pool container it claims does not answer (paused), and removes that container', async () => {
    const manager = api.gw.app.sessions;
    const end = Date.now() + 120_000;
    while (manager.poolSize() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    const [pooled] = (await containersOf(sessions.instanceId)).filter((c) => c.Labels[LABELS.pool] === '1' && c.State === 'running');
    assert.ok(pooled);
    await docker.getContainer(pooled.Id).pause();
    const s = await launch(api, user, { app: 'firefox', url: 'http://example.org/' });
    assert.equal(s.pooled, false, 'started cold');
    assert.equal(s.state, 'ready');
    assert.equal((await xpraClient('info', target(api, s.connect))).code, 0);
    await assert.rejects(docker.getContainer(pooled.Id).inspect(), /no such container/i);
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: user });
  });

  it('stops a session nobody attached to after the idle timeout', async () => {
    const s = await launch(api, user);
    const stopped = await waitForSession(api, user, s.session_id, (v) => v.state === 'stopped', 45_000);
    assert.ok(stopped.ended_at);
    const rows = await auditActions(api, s.session_id);
    const stop = rows.find((r) => r.action === 'session_stopped');
    assert.equal(stop?.details.reason, 'idle-timeout');
    assert.equal((await containersOf(sessions.instanceId)).filter((c) => c.Labels[LABELS.session] === s.session_id).length, 0);
  });

  it('marks a session failed when its container dies, withdraws its route and audits it', async () => {
    const s = await launch(api, user);
    await docker.getContainer(await containerOf(sessions.instanceId, s.session_id)).kill({ signal: 'SIGKILL' });
    const failed = await waitForSession(api, user, s.session_id, (v) => v.state === 'failed', 15_000);
    assert.match(failed.failure_reason ?? '', /ended unexpectedly/);
    assert.equal(api.gw.app.routes.lookup(s.connect.sni), undefined);
    assert.ok((await auditActions(api, s.session_id)).some((r) => r.action === 'session_failed'));
  });

  it('contains a memory hog: that session fails (OOM) with an audit row, the API and other sessions keep answering', async () => {
    const bystander = await launch(api, user);
    const victim = await launch(api, user);
    const hog = execIn(await containerOf(sessions.instanceId, victim.session_id), ['python3', '-c', 'b = []\nwhile True: b.append(bytearray(64 << 20))']);
    const failed = await waitForSession(api, user, victim.session_id, (v) => v.state === 'failed', 30_000);
    await hog.catch(() => null);
    assert.match(failed.failure_reason ?? '', /out of memory/);
    assert.ok((await auditActions(api, victim.session_id)).some((r) => r.action === 'session_failed' && /out of memory/.test(String(r.details.error))));
    assert.equal((await api.request('GET', '/health')).status, 200);
    const other = (await api.request('POST', `/v1/sessions/${bystander.session_id}/connect`, { token: user })).json as typeof bystander.connect;
    assert.equal((await xpraClient('info', target(api, other))).code, 0, 'the other session still answers');
    await api.request('POST', `/v1/sessions/${bystander.session_id}/stop`, { token: user });
  });

  it('contains a fork bomb within the pids limit: the API and other sessions keep answering', async () => {
    const bystander = await launch(api, user);
    const victim = await launch(api, user);
    const cid = await containerOf(sessions.instanceId, victim.session_id);
    const pidsFile = `/sys/fs/cgroup/pids/docker/${cid}/pids.current`;
    assert.ok(existsSync(pidsFile), `cgroup v1 pids file ${pidsFile}`);
    const bomb = execIn(cid, ['bash', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 5']).catch(() => null);
    // Sample the victim's process count while the bomb runs (the cgroup disappears with it).
    let peak = 0;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, Number(readFileSync(pidsFile, 'utf8')));
      } catch {
        // gone: the session ended
      }
    }, 50);
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal((await api.request('GET', '/health')).status, 200);
      // The other session answers a real xpra login (retried: both cores are busy refusing forks).
      let answer = { code: -1 as number | null, stderr: '' };
      for (let i = 0; i < 3 && answer.code !== 0; i++) {
        const r = await api.request('POST', `/v1/sessions/${bystander.session_id}/connect`, { token: user });
        assert.equal(r.status, 200, `connect to the other session: ${r.text}`);
        answer = await xpraClient('info', target(api, r.json as typeof bystander.connect), 20_000);
      }
      assert.equal(answer.code, 0, `the other session still answers: ${answer.stderr.slice(-800)}`);
    } finally {
      clearInterval(sampler);
    }
    assert.ok(peak > 50 && peak <= 512, `the bomb ran into the pids limit: peak ${peak} of 512`);
    for (const s of [victim, bystander]) {
      const r = await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: user });
      assert.equal(r.status, 200);
      assert.ok(['stopped', 'failed'].includes((r.json as SessionView).state));
    }
    await bomb;
    assert.equal((await containersOf(sessions.instanceId)).filter((c) => [victim.session_id, bystander.session_id].includes(c.Labels[LABELS.session] ?? '')).length, 0);
  });
});

describe('session lifecycle: maximum duration', () => {
  // Long enough for a launch and a real xpra client's attach on a very busy host (a cold launch
  // can take over 10 s at a load of 15 on two cores, the client's start and login as long; the
  // attach reaches control over the edge link, then xpra is asked whether it logged in),
  // short enough for a test.
  const sessions = testSessions({ maxDurationCapSeconds: 60, sweepIntervalMs: 500 });
  const app = useSessionsApi(sessions, { db: 'embedded', kv: 'memory' });

  it('stops a session at its maximum duration even while a client is attached', async () => {
    const admin = await app.api.adminToken();
    const display = await startXvfb();
    // The manager's own events, recorded from before the launch: nothing is missed however
    // late the test gets to look (polling the state could miss a short-lived "connected").
    const events: SessionEvent[] = [];
    const waiters = new Set<() => void>();
    const unsubscribe = app.api.gw.app.sessions.onEvent((e) => {
      events.push(e);
      for (const w of waiters) w();
    });
    const clients: AttachedXpra[] = [];
    const event = (pred: (e: SessionEvent) => boolean, what: string) =>
      new Promise<SessionEvent>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} event; seen ${events.map((e) => e.type).join(' ')}`)), 120_000);
        const check = () => {
          const found = events.find(pred);
          if (!found) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        };
        waiters.add(check);
        check();
      });
    try {
      const s = await launch(app.api, admin);
      const mine = (type: SessionEvent['type']) => (e: SessionEvent) => e.sessionId === s.session_id && e.type === type;
      // created_at is the database's transaction time, the deadline the manager's clock a moment later.
      const lifetime = Date.parse(s.deadline_at ?? '') - Date.parse(s.created_at);
      assert.ok(lifetime >= 59_500 && lifetime <= 60_500, `deadline ${lifetime} ms after creation`);
      // A real xpra client: only a client that logged in makes the session connected.
      const client = xpraAttach(target(app.api, s.connect), display.name);
      clients.push(client);
      const closed = new Promise((r) => (client.exited() ? r(null) : client.child.once('exit', r)));
      await event(mine('connected'), 'connected');
      const stopped = await event(mine('stopped'), 'stopped');
      assert.equal(stopped.type === 'stopped' && stopped.reason, 'max-duration');
      // Attached until the end: no idle in between (the stop itself cut the client).
      const types = events.filter((e) => e.sessionId === s.session_id).map((e) => e.type);
      assert.deepEqual(types.slice(types.lastIndexOf('connected')), ['connected', 'stopped'], types.join(' '));
      const view = await waitForSession(app.api, admin, s.session_id, (v) => v.state === 'stopped', 30_000);
      assert.ok(view.ended_at);
      assert.ok(Date.parse(view.ended_at) >= Date.parse(s.deadline_at ?? ''), 'not before its deadline');
      await closed; // the withdrawn route cut the attached client's tunnel: the client exits
      const r = await app.api.request('GET', `/v1/audit?user=${s.session_id}&action=session_stopped`, { token: admin });
      assert.equal((r.json as { items: Array<{ details: { reason: string } }> }).items[0]?.details.reason, 'max-duration');
    } finally {
      unsubscribe();
      for (const c of clients) c.close();
      display.close();
    }
  });
});

describe('session lifecycle: host capacity bounds the pool and launches', () => {
  const sessions = testSessions({ pool: { size: 3, memoryMb: 1024, cpus: 1 }, capacity: { maxContainers: 2, memoryMb: 8192 }, sweepIntervalMs: 500 });
  const app = useSessionsApi(sessions, { db: 'embedded', kv: 'memory' });

  it('keeps the pool within maxContainers and answers 503 CAPACITY_REACHED beyond it', async () => {
    const admin = await app.api.adminToken();
    const manager = app.api.gw.app.sessions;
    const end = Date.now() + 120_000;
    while (manager.poolSize() < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    await new Promise((r) => setTimeout(r, 2_000)); // a third would have started by now
    assert.equal(manager.poolSize(), 2, 'the pool stops at the capacity, not at its size of 3');
    assert.equal((await containersOf(sessions.instanceId)).length, 2);
    const a = await launch(app.api, admin);
    const b = await launch(app.api, admin);
    assert.ok(a.pooled && b.pooled);
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal(manager.poolSize(), 0, 'no room left to refill');
    const c = await app.api.request('POST', '/v1/sessions', { token: admin, body: { app: 'firefox' } });
    assert.equal(c.status, 503, c.text);
    assert.equal((c.json as { error: { code: string } }).error.code, 'CAPACITY_REACHED');
    assert.equal(c.headers['retry-after'], '30');
    assert.equal((await containersOf(sessions.instanceId)).length, 2);
    await app.api.request('POST', `/v1/sessions/${a.session_id}/stop`, { token: admin });
    while (manager.poolSize() < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    assert.equal(manager.poolSize(), 1, 'a freed slot refills the pool');
    await app.api.request('POST', `/v1/sessions/${b.session_id}/stop`, { token: admin });
  });
});
