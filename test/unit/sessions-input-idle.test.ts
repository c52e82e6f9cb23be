import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { SessionEvent } from '../../core/plugin/contract.js';
import { startFakeSessions, type FakeSessions } from '../helpers/fake-runtime.js';

/*
 * The reaper's input idleness with a FakeRuntime whose activity() the test sets (as xpra's
 * `client.idle_time` would report it): an attached client without input for the idle
 * timeout stops the session ('idle-timeout', audited with input: true); a client with recent
 * input keeps it, and is not asked again before its idle time could reach the timeout; a
 * failing ask never stops a session.
 */

const LAUNCH = { app: 'firefox' as const, profile: 'ephemeral' as const, quality: 'low' as const };
const of = (id: string, type: SessionEvent['type']) => (e: SessionEvent) => e.sessionId === id && e.type === type;

describe('reaper: input idleness of connected sessions', () => {
  let s: FakeSessions | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  /** A connected session whose client has been idle for `idleSeconds` (given its idle timeout) from the first ask on. */
  async function connected(idleSeconds: (idleTimeoutS: number) => number = () => 0): Promise<{ id: string; containerId: string }> {
    const { session, connect } = await s!.manager.create(s!.user, LAUNCH);
    const c = s!.runtime.bySession(session.session_id);
    assert.ok(c);
    const idleTimeoutS = (await s!.row(session.session_id)).idleTimeoutS;
    assert.ok(idleTimeoutS, 'the session has an idle timeout');
    // xpra: a client logged in through the tunnel. Set before the tunnel opens: the reaper may
    // ask as soon as the session is connected, and waits for the idle time left before it asks again.
    c.activity = { clients: 1, idleSeconds: idleSeconds(idleTimeoutS), tokensSpent: 0 };
    s!.tunnels.set(connect.sni, 1);
    await s!.event(of(session.session_id, 'connected'));
    return { id: session.session_id, containerId: c.containerId };
  }

  const asks = (containerId: string) => s!.runtime.calls.filter((c) => c.method === 'activity' && c.containerId === containerId).length;
  const lists = () => s!.runtime.calls.filter((c) => c.method === 'list').length;

  it('an attached client with no input for the idle timeout: stopped as idle-timeout, audited with input: true', async () => {
    s = await startFakeSessions();
    const runtime = s.runtime;
    const { id } = await connected((timeout) => timeout);
    const idleTimeoutS = (await s.row(id)).idleTimeoutS;
    const stopped = await s.event(of(id, 'stopped'));
    assert.equal(stopped.type === 'stopped' && stopped.reason, 'idle-timeout');
    assert.equal(runtime.bySession(id), undefined, 'the container is removed');
    const rows = await s.audit(id);
    const stopping = rows.find((r) => r.action === 'session_stopping');
    assert.deepEqual(stopping?.details, { from: 'connected', to: 'stopping', reason: 'idle-timeout', input: true, idleSeconds: idleTimeoutS });
  });

  it('recent input keeps a connected session, and it is not asked again before its idle time could run out', async () => {
    s = await startFakeSessions();
    const { id, containerId } = await connected();
    const atConnect = asks(containerId); // the attach tracker's question: did anyone log in?
    s.runtime.containers.get(containerId)!.activity = { clients: 1, idleSeconds: 5, tokensSpent: 0 };
    await s.until('asked once', () => (asks(containerId) >= atConnect + 1 ? true : undefined));
    const seen = lists();
    // Two reconcile passes (1 s apart) span many reaper sweeps (100 ms apart).
    await s.until('two reconcile passes', () => (lists() >= seen + 2 ? true : undefined));
    assert.equal((await s.row(id)).state, 'connected');
    assert.equal(asks(containerId), atConnect + 1, 'idle 5 s of 3600: the next ask is due in about an hour');
  });

  it('no client in xpra (the tunnel still open) or a failing ask: never a stop', async () => {
    s = await startFakeSessions();
    const { id, containerId } = await connected();
    const c = s.runtime.containers.get(containerId)!;
    const idleTimeoutS = (await s.row(id)).idleTimeoutS ?? 0;
    c.activity = { clients: 0, idleSeconds: null, tokensSpent: 0 };
    await s.until('asked twice', () => (asks(containerId) >= 2 ? true : undefined));
    s.runtime.failing.add('activity');
    c.activity = { clients: 1, idleSeconds: idleTimeoutS + 1, tokensSpent: 0 };
    const before = s.runtime.calls.length;
    await s.until('a failed ask or two', () => (s!.runtime.calls.slice(before).filter((x) => x.method === 'activity').length >= 2 ? true : undefined));
    assert.equal((await s.row(id)).state, 'connected', 'the runtime could not say: the session runs on');
    s.runtime.failing.delete('activity');
    const stopped = await s.event(of(id, 'stopped'));
    assert.equal(stopped.type === 'stopped' && stopped.reason, 'idle-timeout');
  });
});
