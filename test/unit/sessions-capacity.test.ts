import assert from 'node:assert/strict';
import { totalmem } from 'node:os';
import { afterEach, describe, it } from 'node:test';
import { FakeRuntime, startFakeSessions, type FakeSessions } from '../helpers/fake-runtime.js';

/*
 * SessionManager.capacity(): what the admin console's capacity page shows. Real store
 * (PostgreSQL), a FakeRuntime whose status the test sets.
 */

class StatusRuntime extends FakeRuntime {
  status: () => Promise<unknown> = async () => ({ ready: true, reason: null, engineReachable: true, image: { tag: 'hackstream/firefox-xpra:abc', present: true } });
}

const LAUNCH = { app: 'firefox' as const, profile: 'ephemeral' as const, quality: 'low' as const };

describe('SessionManager.capacity', () => {
  let s: FakeSessions | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it('counts live sessions by state against the configured capacity, with the host memory and the runtime status', async () => {
    const runtime = new StatusRuntime();
    s = await startFakeSessions({ capacity: { maxContainers: 7, memoryMb: 4096 } }, { runtime });
    const empty = await s.manager.capacity();
    assert.deepEqual(empty.sessions, { live: 0, byState: {} });
    assert.deepEqual(empty.usage, { containers: 0, memoryMb: 0 });
    assert.deepEqual(empty.limits, { maxContainers: 7, memoryMb: 4096 });
    assert.deepEqual(empty.pool, { size: 0, ready: 0, starting: 0 });
    assert.equal(empty.host.memoryTotalMb, Math.round(totalmem() / 1024 / 1024));
    assert.ok(empty.host.memoryFreeMb > 0 && empty.host.memoryFreeMb <= empty.host.memoryTotalMb);
    assert.deepEqual(empty.runtime, { ready: true, reason: null, engineReachable: true, image: { tag: 'hackstream/firefox-xpra:abc', present: true } });

    const a = (await s.manager.create(s.user, LAUNCH)).session;
    await s.manager.create(s.other, LAUNCH);
    const two = await s.manager.capacity();
    assert.deepEqual(two.sessions, { live: 2, byState: { ready: 2 } });
    assert.equal(two.usage.containers, 2);
    assert.equal(two.usage.memoryMb, 2 * 512, 'the quota memory of each session');
    await s.manager.stop(s.user, a.session_id);
    assert.deepEqual((await s.manager.capacity()).sessions, { live: 1, byState: { ready: 1 } }, 'a stopped session no longer counts');
  });

  it('reports a runtime that is not ready, or does not answer, with the reason', async () => {
    const runtime = new StatusRuntime();
    s = await startFakeSessions({}, { runtime });
    runtime.status = async () => ({ ready: false, reason: 'the session image x is missing (prepare builds it)', engineReachable: true, image: { tag: 'x', present: false } });
    assert.deepEqual((await s.manager.capacity()).runtime, { ready: false, reason: 'the session image x is missing (prepare builds it)', engineReachable: true, image: { tag: 'x', present: false } });
    runtime.status = async () => {
      throw new Error('agent socket closed');
    };
    const down = (await s.manager.capacity()).runtime;
    assert.equal(down.ready, false);
    assert.equal(down.engineReachable, false);
    assert.match(down.reason ?? '', /does not answer \(agent socket closed\)/);
  });

  it('a runtime without status is taken as able (as /ready does)', async () => {
    s = await startFakeSessions();
    assert.deepEqual((await s.manager.capacity()).runtime, { ready: true, reason: null, engineReachable: null, image: null });
  });
});
