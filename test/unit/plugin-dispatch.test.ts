import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { AppError } from '../../core/errors.js';
import type { AuthDecision } from '../../core/plugin/auth-chain.js';
import type { AuditEvent, AuthAnswer, Plugin, SessionEvent } from '../../core/plugin/contract.js';
import { startPlugins, type HostLimits } from '../../core/plugin/host.js';
import { capturingLogger, fakeServices, inline } from '../fixtures/plugins/harness.js';

async function hostWith(plugins: Plugin[], limits: Partial<HostLimits> = {}) {
  const log = capturingLogger();
  const catalogue = Object.fromEntries(plugins.map((p) => [p.name, async () => p]));
  const enabled = Object.fromEntries(plugins.map((p) => [p.name, {}]));
  const host = await startPlugins(enabled, { logger: log.logger, services: fakeServices(), catalogue, limits });
  return { host, lines: log.lines };
}

const ATTEMPT = { username: 'dana', password: 'pw', ip: '192.0.2.7' };
const HANG = new Promise<never>(() => {});

type Behaviour = 'skip' | 'deny' | 'throw' | 'hang' | 'garbage' | `ok:${string}`;
function provider(name: string, behaviour: Behaviour): Plugin {
  return inline(name, (r) =>
    r.authProvider({
      async authenticate() {
        if (behaviour === 'throw') throw new Error('directory unreachable');
        if (behaviour === 'hang') return HANG;
        if (behaviour === 'garbage') return { result: 'yes' } as unknown as AuthAnswer;
        if (behaviour === 'skip') return { result: 'skip' };
        if (behaviour === 'deny') return { result: 'deny', reason: 'locked' };
        return { result: 'ok', userId: behaviour.slice(3) };
      },
    }),
  );
}

describe('auth provider chain', () => {
  const cases: { desc: string; chain: Behaviour[]; expect: AuthDecision }[] = [
    { desc: 'a skip passes to the next provider', chain: ['skip', 'ok:u2'], expect: { result: 'ok', userId: 'u2', provider: 'p1' } },
    { desc: 'the first ok wins', chain: ['ok:u1', 'ok:u2'], expect: { result: 'ok', userId: 'u1', provider: 'p0' } },
    { desc: 'a deny stops the chain', chain: ['deny', 'ok:u2'], expect: { result: 'deny', reason: 'locked', provider: 'p0' } },
    { desc: 'all skip means deny', chain: ['skip', 'skip'], expect: { result: 'deny', reason: 'no-provider-accepted', provider: null } },
    { desc: 'no provider means deny', chain: [], expect: { result: 'deny', reason: 'no-provider-accepted', provider: null } },
    { desc: 'a throwing provider denies (fail closed)', chain: ['throw', 'ok:u2'], expect: { result: 'deny', reason: 'provider-error', provider: 'p0' } },
    { desc: 'a hanging provider denies after the call timeout', chain: ['hang', 'ok:u2'], expect: { result: 'deny', reason: 'provider-error', provider: 'p0' } },
    { desc: 'a malformed answer denies', chain: ['skip', 'garbage', 'ok:u2'], expect: { result: 'deny', reason: 'provider-error', provider: 'p1' } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const { host, lines } = await hostWith(c.chain.map((b, i) => provider(`p${i}`, b)), { callTimeoutMs: 30 });
      assert.deepEqual(await host.auth.authenticate(ATTEMPT), c.expect);
      const failures = lines.filter((l) => l.msg === 'auth provider failed; denying');
      assert.equal(failures.length, c.expect.result === 'deny' && c.expect.reason === 'provider-error' ? 1 : 0);
      assert.ok(!JSON.stringify(lines).includes('"pw"'), 'the password is never logged');
      await host.close();
    });
  }
});

describe('quota policy gate', () => {
  const subject = { userId: 'u1', role: 'user' as const };
  const request = { action: 'session.create' as const, profile: 'ephemeral' as const };

  it('with no policy every check is refused and effectiveQuota fails', async () => {
    const { host, lines } = await hostWith([]);
    assert.equal(host.quota.policy, null);
    assert.deepEqual(await host.quota.check(subject, request), { allowed: false, code: 'QUOTA_UNAVAILABLE', message: 'quotas cannot be checked right now' });
    await assert.rejects(host.quota.effectiveQuota(subject), (err: unknown) => err instanceof AppError && err.code === 'SERVICE_UNAVAILABLE');
    assert.ok(lines.some((l) => l.msg === 'no quota policy is enabled; every quota check is refused'));
  });

  const failing: { desc: string; check: () => Promise<unknown> }[] = [
    { desc: 'throws', check: async () => Promise.reject(new Error('usage store down')) },
    { desc: 'answers garbage', check: async () => ({ allowed: 'maybe' }) },
    { desc: 'hangs', check: () => HANG },
  ];
  for (const f of failing) {
    it(`a policy that ${f.desc} refuses (fail closed)`, async () => {
      const policy = inline('q', (r) => r.quotaPolicy({ check: f.check as never, effectiveQuota: () => HANG }));
      const { host, lines } = await hostWith([policy], { callTimeoutMs: 30 });
      assert.equal(host.quota.policy, 'q');
      const decision = await host.quota.check(subject, request);
      assert.equal(decision.allowed, false);
      assert.equal(!decision.allowed && decision.code, 'QUOTA_UNAVAILABLE');
      assert.equal(lines.find((l) => l.msg === 'quota policy failed; refusing')?.plugin, 'q');
      await assert.rejects(host.quota.effectiveQuota(subject), AppError);
    });
  }
});

function auditEvent(i: number): AuditEvent {
  return { id: `a${i}`, at: new Date(0).toISOString(), actor: 'u1', action: 'auth.login', target: null, ip: '192.0.2.7', result: 'success' };
}

describe('audit sinks', () => {
  it('a throwing sink is logged and isolated; events are frozen and shared', async () => {
    const got: AuditEvent[] = [];
    const bad = inline('bad', (r) => r.auditSink({ write: () => { throw new Error('sync boom'); } }));
    const good = inline('good', (r) => r.auditSink({ write: async (e) => void got.push(e) }));
    const { host, lines } = await hostWith([bad, good]);
    for (let i = 0; i < 3; i++) host.audit.emit(auditEvent(i));
    await host.close();
    assert.deepEqual(got.map((e) => e.id), ['a0', 'a1', 'a2']);
    assert.ok(got.every((e) => Object.isFrozen(e)));
    assert.equal(lines.filter((l) => l.msg === 'audit sink write failed' && l.plugin === 'bad').length, 3);
  });

  it('a slow sink never blocks emit and its queue is bounded', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slowGot: string[] = [];
    const fastGot: string[] = [];
    const slow = inline('slow', (r) => r.auditSink({ write: async (e) => { await gate; slowGot.push(e.id); } }));
    const fast = inline('fast', (r) => r.auditSink({ write: async (e) => void fastGot.push(e.id) }));
    const { host, lines } = await hostWith([slow, fast], { audit: { queueMax: 3, writeTimeoutMs: 5_000 } });
    const started = performance.now();
    for (let i = 0; i < 10; i++) host.audit.emit(auditEvent(i));
    assert.ok(performance.now() - started < 20, 'emit returns at once');
    await sleep(10);
    assert.equal(fastGot.length, 3 + 1, 'the fast sink is bounded by its own queue, not the slow one');
    assert.equal(lines.filter((l) => l.msg === 'audit sink queue full; dropping events').length, 2, 'once per sink');
    release();
    await host.close();
    assert.deepEqual(slowGot, ['a0', 'a1', 'a2', 'a3']);
    assert.equal(lines.find((l) => l.msg === 'audit sink dropped events' && l.plugin === 'slow')?.dropped, 6);
  });

  it('a hanging sink times out per write and shutdown waits only so long', async () => {
    const hang = inline('hang', (r) => r.auditSink({ write: () => HANG }));
    const { host, lines } = await hostWith([hang], { audit: { queueMax: 10, writeTimeoutMs: 20 }, auditDrainMs: 30 });
    host.audit.emit(auditEvent(1));
    host.audit.emit(auditEvent(2));
    const started = performance.now();
    await host.close();
    assert.ok(performance.now() - started < 200);
    assert.ok(lines.some((l) => l.msg === 'audit sink write failed' && l.auditId === 'a1'));
    host.audit.emit(auditEvent(3)); // after close: ignored, no throw
  });
});

describe('session lifecycle listeners', () => {
  it('a throwing or rejecting listener is logged and the others still run', async () => {
    const got: SessionEvent[] = [];
    const throws = inline('throws', (r) => r.sessionEvents(() => { throw new Error('sync boom'); }));
    const rejects = inline('rejects', (r) => r.sessionEvents(async () => Promise.reject(new Error('async boom'))));
    const good = inline('good', (r) => r.sessionEvents((e) => void got.push(e)));
    const { host, lines } = await hostWith([throws, rejects, good]);
    const event: SessionEvent = { type: 'failed', sessionId: 's1', userId: 'u1', at: new Date(0).toISOString(), error: 'image missing' };
    host.sessions.emit(event);
    await sleep(5);
    assert.deepEqual(got, [event]);
    assert.ok(Object.isFrozen(got[0]));
    const failures = lines.filter((l) => l.msg === 'session listener failed');
    assert.deepEqual(failures.map((l) => [l.plugin, l.sessionId, l.event]), [['throws', 's1', 'failed'], ['rejects', 's1', 'failed']]);
    await host.close();
  });
});
