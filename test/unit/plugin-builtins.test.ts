import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QuotaRequest, QuotaSubject, Usage } from '../../core/plugin/contract.js';
import { startPlugins } from '../../core/plugin/host.js';
import { silentLogger } from '../../lib/log.js';
import { unavailableServices } from '../../core/plugin/services.js';
import { fakeServices } from '../fixtures/plugins/harness.js';

const start = (enabled: Record<string, unknown>, usage: Record<string, Usage> = {}) =>
  startPlugins(enabled, { logger: silentLogger(), services: fakeServices(usage) });

describe('auth-local', () => {
  const cases: { desc: string; username: string; password: string; expect: object }[] = [
    { desc: 'right password', username: 'alice', password: 'correct horse', expect: { result: 'ok', userId: 'u-alice', provider: 'auth-local' } },
    { desc: 'wrong password is denied', username: 'alice', password: 'Correct horse', expect: { result: 'deny', reason: 'wrong-password', provider: 'auth-local' } },
    { desc: 'disabled account is denied', username: 'carol', password: 'anything', expect: { result: 'deny', reason: 'disabled', provider: 'auth-local' } },
    { desc: 'unknown user is skipped (then the chain denies)', username: 'zed', password: 'x', expect: { result: 'deny', reason: 'no-provider-accepted', provider: null } },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const host = await start({ 'auth-local': {} });
      assert.deepEqual(await host.auth.authenticate({ username: c.username, password: c.password, ip: '127.0.0.1' }), c.expect);
      await host.close();
    });
  }
});

describe('quota-default', () => {
  const user = (userId: string, override?: QuotaSubject['override']): QuotaSubject => ({ userId, role: 'user', ...(override ? { override } : {}) });
  const ephemeral: QuotaRequest = { action: 'session.create', profile: 'ephemeral' };
  const persist: QuotaRequest = { action: 'session.create', profile: 'persist' };

  it('applies per-role defaults, options and per-user overrides', async () => {
    const host = await start({ 'quota-default': { user: { maxSessions: 3 } } });
    const q = await host.quota.effectiveQuota(user('u1'));
    assert.deepEqual(q, { maxSessions: 3, cpus: 1, memoryMb: 2048, idleTimeoutMinutes: 30, maxDurationMinutes: 480, storageMb: 1024, profileMb: 512 });
    assert.equal((await host.quota.effectiveQuota({ userId: 'a1', role: 'admin' })).maxSessions, 4);
    const overridden = await host.quota.effectiveQuota(user('u1', { memoryMb: 8192, cpus: undefined }));
    assert.equal(overridden.memoryMb, 8192);
    assert.equal(overridden.cpus, 1);
    await host.close();
  });

  const cases: { desc: string; usage: Usage; subject: QuotaSubject; request: QuotaRequest; allowed: boolean; message?: RegExp }[] = [
    { desc: 'under the session limit', usage: { sessions: 1, storageMb: 0 }, subject: user('u1'), request: ephemeral, allowed: true },
    { desc: 'at the session limit', usage: { sessions: 2, storageMb: 0 }, subject: user('u1'), request: ephemeral, allowed: false, message: /at most 2 sessions/ },
    { desc: 'an override raises the limit', usage: { sessions: 2, storageMb: 0 }, subject: user('u1', { maxSessions: 5 }), request: ephemeral, allowed: true },
    { desc: 'an override of 0 blocks', usage: { sessions: 0, storageMb: 0 }, subject: user('u1', { maxSessions: 0 }), request: ephemeral, allowed: false, message: /at most 0 sessions/ },
    { desc: 'persist with storage used up', usage: { sessions: 0, storageMb: 1024 }, subject: user('u1'), request: persist, allowed: false, message: /storage quota of 1024 MB/ },
    { desc: 'ephemeral ignores storage', usage: { sessions: 0, storageMb: 1024 }, subject: user('u1'), request: ephemeral, allowed: true },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const host = await start({ 'quota-default': {} }, { u1: c.usage });
      const decision = await host.quota.check(c.subject, c.request);
      assert.equal(decision.allowed, c.allowed);
      if (!decision.allowed) {
        assert.equal(decision.code, 'QUOTA_EXCEEDED');
        assert.match(decision.message, c.message ?? /./);
      }
      await host.close();
    });
  }
});

describe('built-ins before core wires its services', () => {
  it('auth and quota fail closed', async () => {
    const host = await startPlugins({ 'auth-local': {}, 'quota-default': {} }, { logger: silentLogger(), services: unavailableServices() });
    assert.deepEqual(await host.auth.authenticate({ username: 'alice', password: 'correct horse', ip: '127.0.0.1' }), { result: 'deny', reason: 'provider-error', provider: 'auth-local' });
    const decision = await host.quota.check({ userId: 'u1', role: 'user' }, { action: 'session.create', profile: 'ephemeral' });
    assert.deepEqual(decision, { allowed: false, code: 'QUOTA_UNAVAILABLE', message: 'quotas cannot be checked right now' });
    await host.close();
  });
});
