import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { SessionEntity } from '../../core/store/entities.js';
import { FakeRuntime, startFakeSessions, type FakeSessions } from '../helpers/fake-runtime.js';

/*
 * The reconciler with a FakeRuntime on the real store: at start-up it adopts what runs and
 * ends what cannot; while running (every reconcileIntervalSeconds, here 1 s) it corrects
 * orphan containers, stuck rows, rows deleted by hand and stale routes, each correction with
 * exactly one audit row, and leaves launches in flight alone.
 */

const LAUNCH = { app: 'firefox' as const, profile: 'ephemeral' as const, quality: 'low' as const };

describe('reconciler with a fake runtime', () => {
  const open: FakeSessions[] = [];
  const start = async (...args: Parameters<typeof startFakeSessions>) => {
    const s = await startFakeSessions(...args);
    open.push(s);
    return s;
  };
  afterEach(async () => {
    // The last opened owns the database when several share it.
    for (const s of open.splice(0).reverse()) await s.close();
  });

  /** Waits until `n` more reconcile passes (runtime listings) happened. */
  const passes = async (s: FakeSessions, n = 2) => {
    const lists = () => s.runtime.calls.filter((c) => c.method === 'list').length;
    const seen = lists();
    await s.until(`${n} reconcile passes`, () => (lists() >= seen + n ? true : undefined));
  };

  it('at start-up: adopts a running session (routed again), ends vanished and interrupted ones, adopts a pool container, removes an unknown one', async () => {
    const runtime = new FakeRuntime();
    const first = await startFakeSessions({ pool: { size: 0 } }, { runtime });
    const kept = await first.manager.create(first.user, LAUNCH);
    const vanished = await first.manager.create(first.user, LAUNCH);
    await first.manager.close();
    runtime.containers.delete(runtime.bySession(vanished.session.session_id)!.containerId);
    const interrupted = randomUUID();
    await first.db.db.dataSource.getRepository(SessionEntity).insert({
      id: interrupted,
      userId: first.user.id,
      state: 'starting',
      app: 'firefox',
      profile: 'ephemeral',
      quality: 'low',
      hostname: `${interrupted}.sessions.test`,
      instanceId: 'fake-instance',
    });
    const warm = runtime.plant(randomUUID(), { pooled: true });
    const stray = runtime.plant(randomUUID());

    const s = await start({ pool: { size: 1, memoryMb: 256, cpus: 1 } }, { runtime, db: first.db });
    open.unshift(first); // closes (and drops the database) last
    await s.event((e) => e.sessionId === interrupted && e.type === 'failed');
    await s.event((e) => e.sessionId === vanished.session.session_id && e.type === 'stopped');
    await s.until('the pool adopted the warm container', () => (s.manager.poolSize() === 1 ? true : undefined));
    assert.ok(runtime.containers.has(warm.containerId), 'the warm pool container is kept, not replaced');
    assert.equal(runtime.containers.has(stray.containerId), false, 'the unknown container is removed');
    // The container goes before its audit row is written: wait for the row, then check it.
    const strayRows = await s.until("the stray container's removal is audited", async () => {
      const rows = (await s.audit(stray.sessionId)).map((r) => [r.action, r.details.correction]);
      return rows.length > 0 ? rows : undefined;
    });
    assert.deepEqual(strayRows, [['session_reconciled', 'row-missing']]);
    const adopted = await s.until('the adoption is audited', async () => {
      const rows = await s.audit(kept.session.session_id, 'session_adopted');
      return rows.length > 0 ? rows : undefined;
    });
    assert.equal(adopted.length, 1);
    // Routed again, admitting nobody until a client asks for a connect token.
    assert.deepEqual(s.routes.lookup(kept.connect.sni), { ...runtime.bySession(kept.session.session_id)?.upstream, admit: [] });
    assert.match((await s.row(interrupted)).failureReason ?? '', /interrupted/);
    assert.equal((await s.audit(vanished.session.session_id, 'session_stopped'))[0]?.details.reason, 'reconciled');
    await passes(s);
    assert.equal((await s.audit(kept.session.session_id, 'session_adopted')).length, 1, 'later passes do not adopt again');
  });

  it('while running: a container whose removal failed in an engine outage is removed once the engine is back (one audit row)', async () => {
    const s = await start();
    const { session } = await s.manager.create(s.user, LAUNCH);
    const c = s.runtime.bySession(session.session_id)!;
    s.runtime.failing.add('remove');
    s.runtime.exit(c.containerId, 137);
    await s.event((e) => e.sessionId === session.session_id && e.type === 'failed');
    assert.ok(s.runtime.containers.has(c.containerId), 'left behind by the outage');
    s.runtime.failing.delete('remove');
    await s.until('the orphan is removed', () => (s.runtime.containers.has(c.containerId) ? undefined : true));
    await passes(s);
    assert.deepEqual(
      (await s.audit(session.session_id, 'session_reconciled')).map((r) => r.details.correction),
      ['orphan-container'],
    );
  });

  it('while running: a session stuck stopping (teardown failed in an outage) ends stopped, its container gone (one audit row)', async () => {
    const s = await start();
    const { session } = await s.manager.create(s.user, LAUNCH);
    s.runtime.failing.add('remove');
    await assert.rejects(s.manager.stop(s.user, session.session_id), (e: Error & { code?: string }) => e.code === 'RUNTIME_UNAVAILABLE');
    assert.equal((await s.row(session.session_id)).state, 'stopping');
    const before = (await s.audit(session.session_id)).length;
    s.runtime.failing.delete('remove');
    const stopped = await s.event((e) => e.sessionId === session.session_id && e.type === 'stopped');
    assert.equal(stopped.type === 'stopped' && stopped.reason, 'reconciled');
    assert.equal(s.runtime.bySession(session.session_id), undefined);
    await passes(s);
    const added = (await s.audit(session.session_id)).slice(before);
    assert.deepEqual(
      added.map((r) => [r.action, r.details.reason]),
      [['session_stopped', 'reconciled']],
    );
  });

  it('while running: a row deleted by hand has its container and its route removed, one audit row each', async () => {
    const s = await start();
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    const c = s.runtime.bySession(session.session_id)!;
    await s.db.db.dataSource.query('DELETE FROM sessions WHERE id = $1', [session.session_id]);
    await s.until('the container is removed', () => (s.runtime.containers.has(c.containerId) ? undefined : true));
    await s.until('the route is removed', () => (s.routes.lookup(connect.sni) ? undefined : true));
    await passes(s);
    assert.deepEqual(
      (await s.audit(session.session_id, 'session_reconciled')).map((r) => r.details.correction).sort(),
      ['row-missing', 'stale-route'],
    );
  });

  it('while running: a stale route of an ended session is removed (one audit row)', async () => {
    const s = await start();
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    await s.manager.stop(s.user, session.session_id);
    await s.routes.add(connect.sni, { host: '10.99.9.9', port: 14500 });
    await s.until('the stale route is removed', () => (s.routes.lookup(connect.sni) ? undefined : true));
    await passes(s);
    assert.deepEqual(
      (await s.audit(session.session_id, 'session_reconciled')).map((r) => r.details.correction),
      ['stale-route'],
    );
  });

  it('while running: leaves a launch in flight alone, however long its start takes', async () => {
    const s = await start();
    let release!: () => void;
    s.runtime.createGate = new Promise<void>((r) => (release = r));
    const launching = s.manager.create(s.user, LAUNCH);
    const created = await s.event((e) => e.type === 'created');
    await passes(s, 2);
    assert.equal((await s.row(created.sessionId)).state, 'starting', 'not failed as stuck');
    release();
    s.runtime.createGate = undefined;
    const { session } = await launching;
    assert.equal(session.state, 'ready');
  });

  const changes = [
    { description: 'disabled', patch: { disabled: true }, cause: 'user-disabled' },
    { description: 'given a new password', patch: { password: 'a brand new password 123' }, cause: 'password-reset' },
    { description: 'made an admin', patch: { role: 'admin' as const }, cause: 'role-changed' },
    { description: 'given another quota (no revocation)', patch: { quota: { maxSessions: 3 } }, cause: null },
  ];
  for (const c of changes) {
    it(`while running: a user ${c.description} behind its back (the admin CLI) ${c.cause ? 'has their live sessions stopped' : 'keeps their sessions'}`, async () => {
      const s = await start();
      const { session } = await s.manager.create(s.user, LAUNCH);
      const other = await s.manager.create(s.other, LAUNCH);
      await s.users.update(s.user.id, c.patch, { id: 'cli:root', ip: null });
      if (c.cause) {
        const stopped = await s.event((e) => e.sessionId === session.session_id && e.type === 'stopped');
        assert.equal(stopped.type === 'stopped' && stopped.reason, 'admin');
        assert.equal((await s.audit(session.session_id, 'session_stopped'))[0]?.details.cause, c.cause);
      } else {
        await passes(s);
        assert.equal((await s.row(session.session_id)).state, 'ready');
      }
      assert.equal((await s.row(other.session.session_id)).state, 'ready', 'another user’s session runs on');
      // A session launched after the change is not ended for it.
      if (c.patch.disabled) return;
      const later = await s.manager.create(s.user, LAUNCH);
      await passes(s);
      assert.equal((await s.row(later.session.session_id)).state, 'ready');
    });
  }
});
