import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { SessionEvent } from '../../core/plugin/contract.js';
import { SessionEntity } from '../../core/store/entities.js';
import { RuntimeCallError } from '../../core/sessions/runtime.js';
import { startFakeSessions, type AuditEntryView, type FakeSessions } from '../helpers/fake-runtime.js';

/*
 * The sessions state machine on the real store (PostgreSQL, real audit) with a FakeRuntime:
 * create → ready, stop, container exit and OOM, the reaper's idle timeout and maximum
 * duration, the pool's claim and its refill on session events, ending a user's sessions.
 */

const LAUNCH = { app: 'firefox' as const, profile: 'ephemeral' as const, quality: 'low' as const };
const of = (id: string, type: SessionEvent['type']) => (e: SessionEvent) => e.sessionId === id && e.type === type;

describe('sessions core with a fake runtime', () => {
  let s: FakeSessions | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it('create → ready: a starting row, a container, a route, a connect token, audited in order', async () => {
    s = await startFakeSessions();
    const { session, connect } = await s.manager.create(s.user, { ...LAUNCH, url: 'https://example.org/' }, { sourceIp: '::ffff:192.0.2.10' });
    assert.equal(session.state, 'ready');
    const c = s.runtime.bySession(session.session_id);
    assert.ok(c?.running, 'a container runs for it');
    assert.equal(c.spec.url, 'https://example.org/');
    assert.deepEqual(
      s.routes.lookup(connect.sni),
      { ...c.upstream, admit: [{ address: '192.0.2.10', until: Date.parse(connect.expires_at) }] },
      'routed to the container, admitting only the caller until its token expires',
    );
    assert.equal(c.tokens.length, 1, 'the token was allowed in the container (by hash)');
    assert.ok(!c.tokens.includes(connect.token));
    const actions = (await s.audit(session.session_id)).map((r) => r.action);
    assert.deepEqual(actions, ['session_created', 'session_ready', 'session_connect_token']);
    await s.event(of(session.session_id, 'ready'));
    const other = await s.manager.connect(s.user, session.session_id, { sourceIp: '198.51.100.7' });
    assert.deepEqual(
      s.routes.lookup(connect.sni)?.admit?.map((a) => a.address),
      ['192.0.2.10', '198.51.100.7'],
      'a /connect from another address admits that one too',
    );
    assert.ok(other.token !== connect.token);
  });

  it('stop: route withdrawn, container removed, stopped with reason; a second stop answers the final state', async () => {
    s = await startFakeSessions();
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    const stopped = await s.manager.stop(s.user, session.session_id);
    assert.equal(stopped.state, 'stopped');
    assert.ok(stopped.ended_at);
    assert.equal(s.routes.lookup(connect.sni), undefined);
    assert.equal(s.runtime.bySession(session.session_id), undefined);
    const rows = await s.audit(session.session_id);
    assert.deepEqual(
      rows.slice(-2).map((r) => [r.action, r.details.reason]),
      [
        ['session_stopping', 'user'],
        ['session_stopped', 'user'],
      ],
    );
    assert.equal((await s.manager.stop(s.user, session.session_id)).state, 'stopped');
    assert.equal((await s.audit(session.session_id)).length, rows.length, 'the second stop changed nothing');
  });

  const exits = [
    { description: 'a crash fails it with the exit code', code: 137, oom: false, state: 'failed', reason: /ended unexpectedly \(exit code 137\)/ },
    { description: 'the OOM killer fails it with "out of memory"', code: 137, oom: true, state: 'failed', reason: /out of memory/ },
    { description: 'a clean exit stops it (app-exited)', code: 0, oom: false, state: 'stopped', reason: null },
  ] as const;
  for (const x of exits) {
    it(`container exit: ${x.description}, route withdrawn, audited`, async () => {
      s = await startFakeSessions();
      const { session, connect } = await s.manager.create(s.user, LAUNCH);
      const c = s.runtime.bySession(session.session_id);
      assert.ok(c);
      s.runtime.exit(c.containerId, x.code, x.oom);
      await s.event(of(session.session_id, x.state));
      const row = await s.row(session.session_id);
      assert.equal(row.state, x.state);
      if (x.reason) assert.match(row.failureReason ?? '', x.reason);
      else assert.equal(row.failureReason, null);
      assert.equal(s.routes.lookup(connect.sni), undefined);
      assert.equal(s.runtime.containers.has(c.containerId), false, 'the exited container is removed');
      const last = (await s.audit(session.session_id)).at(-1);
      assert.equal(last?.action, x.state === 'failed' ? 'session_failed' : 'session_stopped');
      if (x.state === 'stopped') assert.equal(last?.details.reason, 'app-exited');
    });
  }

  it('a start the runtime fails leaves a failed row, no container, and answers SESSION_START_FAILED', async () => {
    s = await startFakeSessions();
    s.runtime.failNextCreate = new RuntimeCallError('start', 'the session container was not ready in time');
    await assert.rejects(s.manager.create(s.user, LAUNCH), (e: Error & { code?: string }) => e.code === 'SESSION_START_FAILED');
    const failed = await s.event((e) => e.type === 'failed');
    assert.equal((await s.row(failed.sessionId)).state, 'failed');
    assert.equal(s.runtime.containers.size, 0);
    s.runtime.failNextCreate = new RuntimeCallError('limit', 'the host is full');
    await assert.rejects(s.manager.create(s.user, LAUNCH), (e: Error & { code?: string }) => e.code === 'CAPACITY_REACHED');
  });

  it('connected ⇄ idle follows the tunnels; the reaper stops an idle session after its idle timeout', async () => {
    s = await startFakeSessions();
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    s.runtime.bySession(session.session_id)!.activity = { clients: 1, idleSeconds: 0, tokensSpent: 0 }; // xpra: a client logged in
    s.tunnels.set(connect.sni, 1);
    await s.event(of(session.session_id, 'connected'));
    assert.equal((await s.row(session.session_id)).idleSince, null);
    s.tunnels.set(connect.sni, 0);
    await s.event(of(session.session_id, 'idle'));
    // The idle timeout ran out (moved into the past rather than waited for).
    await s.db.db.dataSource.getRepository(SessionEntity).update({ id: session.session_id }, { idleSince: new Date(Date.now() - 61 * 60_000) });
    const stopped = await s.event(of(session.session_id, 'stopped'));
    assert.equal(stopped.type === 'stopped' && stopped.reason, 'idle-timeout');
    assert.equal(s.runtime.bySession(session.session_id), undefined);
  });

  it('only a tunnel whose client logged in makes the session connected; tunnels left with nobody logged in are idle', async () => {
    s = await startFakeSessions();
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    const c = s.runtime.bySession(session.session_id)!;
    const asks = () => s!.runtime.calls.filter((x) => x.method === 'activity' && x.containerId === c.containerId).length;
    s.tunnels.set(connect.sni, 1); // a knocker: TLS through to xpra, never a login
    await s.until('xpra asked twice', () => (asks() >= 2 ? true : undefined));
    assert.equal((await s.row(session.session_id)).state, 'ready', 'nobody logged in: not connected');
    c.activity = { clients: 1, idleSeconds: 0, tokensSpent: 0 };
    s.tunnels.set(connect.sni, 2); // a real client logs in
    await s.event(of(session.session_id, 'connected'));
    c.activity = { clients: 0, idleSeconds: null, tokensSpent: 0 };
    s.tunnels.set(connect.sni, 1); // it leaves; the knocker's tunnel stays open
    await s.event(of(session.session_id, 'idle'));
    assert.ok((await s.row(session.session_id)).idleSince, 'the idle timeout runs');
  });

  it('the reaper leaves a connected session alone at its idle timeout, and stops it at its deadline', async () => {
    s = await startFakeSessions();
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    s.runtime.bySession(session.session_id)!.activity = { clients: 1, idleSeconds: 0, tokensSpent: 0 }; // xpra: a client logged in
    s.tunnels.set(connect.sni, 1);
    await s.event(of(session.session_id, 'connected'));
    const repo = s.db.db.dataSource.getRepository(SessionEntity);
    // Connected with an idle-since long past (as if stale): not idle, so not stopped; a sweep passes.
    await repo.update({ id: session.session_id }, { idleSince: new Date(Date.now() - 61 * 60_000) });
    // Two reconcile passes (1 s apart) span many reaper sweeps (100 ms apart).
    const lists = () => s!.runtime.calls.filter((c) => c.method === 'list').length;
    const seen = lists();
    await s.until('two reconcile passes', () => (lists() >= seen + 2 ? true : undefined));
    assert.equal((await s.row(session.session_id)).state, 'connected');
    await repo.update({ id: session.session_id }, { deadlineAt: new Date(Date.now() - 1000) });
    const stopped = await s.event(of(session.session_id, 'stopped'));
    assert.equal(stopped.type === 'stopped' && stopped.reason, 'max-duration');
    assert.equal(s.routes.lookup(connect.sni), undefined, 'the route is gone, which cuts the attached client');
    const reasons = (await s.audit(session.session_id)).map((r) => `${r.action}:${String(r.details.reason ?? '')}`);
    assert.deepEqual(reasons.slice(-2), ['session_stopping:max-duration', 'session_stopped:max-duration']);
    assert.ok(!reasons.includes('session_stopped:idle-timeout'));
  });

  it('pool: fills after the first reconcile, a launch claims it with the user’s limits, and a session event refills it', async () => {
    s = await startFakeSessions({ pool: { size: 1, memoryMb: 256, cpus: 1 } });
    await s.until('the pool filled', () => (s!.manager.poolSize() === 1 ? true : undefined));
    const [warm] = s.runtime.pooled();
    assert.ok(warm);
    const { session } = await s.manager.create(s.user, LAUNCH);
    assert.equal(session.pooled, true);
    assert.equal(session.session_id, warm.sessionId);
    assert.equal(warm.claimedBy, s.user.id);
    assert.equal(warm.limits.memoryMb, 512, 'the claim applied the quota’s memory');
    await s.event(of(session.session_id, 'ready'));
    await s.until('the pool refilled', () => (s!.manager.poolSize() === 1 ? true : undefined));
    assert.equal(s.runtime.pooled().length, 1);
    assert.notEqual(s.runtime.pooled()[0]?.sessionId, session.session_id);
  });

  it('pool: a pool container that exits is replaced; an unusable one is removed and the launch starts cold', async () => {
    s = await startFakeSessions({ pool: { size: 1, memoryMb: 256, cpus: 1 } });
    const first = await s.until('the pool filled', () => s!.runtime.pooled()[0]);
    s.runtime.exit(first.containerId, 1);
    const second = await s.until('a new pool container', () => s!.runtime.pooled().find((c) => c.running && c.containerId !== first.containerId));
    assert.equal(s.runtime.containers.has(first.containerId), false);
    await s.until('the pool is ready', () => (s!.manager.poolSize() === 1 ? true : undefined));
    s.runtime.containers.get(second.containerId)!.running = false; // broke without an exit report
    const { session } = await s.manager.create(s.user, LAUNCH);
    assert.equal(session.pooled, false, 'started cold');
    assert.notEqual(s.runtime.bySession(session.session_id)?.containerId, second.containerId, 'in a new container');
    assert.equal(s.runtime.containers.has(second.containerId), false, 'the unusable pool container is removed');
  });

  it('endUserSessions stops every live session of that user only, route first, audited with the cause', async () => {
    s = await startFakeSessions();
    const a = await s.manager.create(s.user, LAUNCH);
    const b = await s.manager.create(s.user, LAUNCH);
    const bystander = await s.manager.create(s.other, LAUNCH);
    const order: string[] = [];
    const origRemove = s.runtime.remove.bind(s.runtime);
    s.runtime.remove = async (id) => {
      order.push(`container:${[...s!.runtime.containers.values()].find((c) => c.containerId === id)?.sessionId ?? '?'}`);
      await origRemove(id);
    };
    s.routes.onRemove((h) => order.push(`route:${h.split('.')[0]}`));
    assert.equal(await s.manager.endUserSessions(s.user.id, 'user-disabled', { id: 'admin-1', ip: '192.0.2.1' }), 2);
    for (const x of [a, b]) {
      const row = await s.row(x.session.session_id);
      assert.equal(row.state, 'stopped');
      assert.ok(order.indexOf(`route:${x.session.session_id}`) < order.indexOf(`container:${x.session.session_id}`), `route before container: ${order.join(' ')}`);
      const stop: AuditEntryView | undefined = (await s.audit(x.session.session_id, 'session_stopped'))[0];
      assert.equal(stop?.actor, 'admin-1');
      assert.deepEqual([stop?.details.reason, stop?.details.cause], ['admin', 'user-disabled']);
    }
    assert.equal((await s.row(bystander.session.session_id)).state, 'ready', 'another user’s session runs on');
    assert.equal(await s.manager.endUserSessions(s.user.id, 'user-disabled', { id: 'admin-1' }), 0, 'nothing left to end');
  });
  it("relayTarget (the edge's own WebSocket relay): the session's hostname and CA, owner only, running only, and no connect token", async () => {
    s = await startFakeSessions();
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    const c = s.runtime.bySession(session.session_id);
    const tokensBefore = c?.tokens.length;
    const t = await s.manager.relayTarget(s.user, session.session_id);
    assert.deepEqual(t, { sni: connect.sni, caPem: connect.ca_cert });
    assert.equal(c?.tokens.length, tokensBefore, 'no token was allowed in the container');
    assert.deepEqual((await s.audit(session.session_id, 'session_connect_token')).length, 1, "only the launch's token is audited");
    await assert.rejects(s.manager.relayTarget(s.other, session.session_id), (err: { code?: string }) => err.code === 'NOT_FOUND');
    await s.manager.stop(s.user, session.session_id);
    await assert.rejects(s.manager.relayTarget(s.user, session.session_id), (err: { code?: string }) => err.code === 'SESSION_NOT_RUNNING');
  });
});
