import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../core/config/load.js';
import type { AuditEvent, SessionEvent } from '../../core/plugin/contract.js';
import { startPlugins, type PluginHost } from '../../core/plugin/host.js';
import { capturingLogger, fakeServices, serveApi, TEST_CATALOGUE } from '../fixtures/plugins/harness.js';

/** Starts the host from a config file's content, as core does, and serves its routes. */
async function boot(rawConfig: unknown) {
  const config = parseConfig(rawConfig);
  const { logger } = capturingLogger();
  const host = await startPlugins(config.plugins, { logger, services: fakeServices(), catalogue: TEST_CATALOGUE });
  const api = await serveApi(host, logger);
  return { host, api };
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  const json = res.headers.get('content-type')?.startsWith('application/json');
  return { status: res.status, headers: res.headers, body: json ? (JSON.parse(text) as unknown) : text };
}

const sub = (userId: string) => ({ userId, role: 'user' as const });
const CREATE = { action: 'session.create' as const, profile: 'ephemeral' as const };
const login = (username: string, password: string) => ({ username, password, ip: '127.0.0.1' });

describe('the test plugin, enabled by config', () => {
  let host: PluginHost;
  let api: { url: string; close(): Promise<void> };
  before(async () => {
    ({ host, api } = await boot({ plugins: { 'auth-local': {}, 'test-everything': { greeting: 'hoi' } } }));
  });
  after(async () => {
    await api.close();
    await host.close();
  });

  it('serves its routes under /v1/plugins/test-everything over HTTP', async () => {
    const res = await getJson(`${api.url}/v1/plugins/test-everything/hello`, { headers: { 'x-request-id': 'req-12345678' } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { greeting: 'hoi', reqId: 'req-12345678' });
    assert.equal((await getJson(`${api.url}/health`)).status, 200, 'core routes are untouched');
    assert.equal((await getJson(`${api.url}/hello`)).status, 404, 'nothing outside its namespace');
    assert.equal((await getJson(`${api.url}/v1/plugins/test-everything/hello`, { method: 'POST' })).status, 405);
  });

  it('takes part in the auth chain after auth-local', async () => {
    const cases: { desc: string; attempt: ReturnType<typeof login>; expect: object }[] = [
      { desc: 'local user', attempt: login('alice', 'correct horse'), expect: { result: 'ok', userId: 'u-alice', provider: 'auth-local' } },
      { desc: 'fixture user', attempt: login('fixture-user', 'fixture-pass'), expect: { result: 'ok', userId: 'u-fixture', provider: 'test-everything' } },
      { desc: 'fixture user, wrong password', attempt: login('fixture-user', 'nope'), expect: { result: 'deny', reason: 'wrong fixture password', provider: 'test-everything' } },
      { desc: 'local user, wrong password', attempt: login('alice', 'fixture-pass'), expect: { result: 'deny', reason: 'wrong-password', provider: 'auth-local' } },
      { desc: 'nobody knows them', attempt: login('mallory', 'x'), expect: { result: 'deny', reason: 'no-provider-accepted', provider: null } },
    ];
    for (const c of cases) assert.deepEqual(await host.auth.authenticate(c.attempt), c.expect, c.desc);
  });

  it('its quota policy decides', async () => {
    assert.equal(host.quota.policy, 'test-everything');
    assert.deepEqual(await host.quota.check(sub('u-refused'), CREATE), { allowed: false, code: 'QUOTA_EXCEEDED', message: 'the fixture policy says no' });
    assert.deepEqual(await host.quota.check(sub('u-1'), CREATE), { allowed: true });
    assert.equal((await host.quota.effectiveQuota(sub('u-1'))).maxSessions, 7);
  });

  it('its audit sink and session listener receive events', async () => {
    const audit: AuditEvent = { id: '1', at: '2025-01-01T00:00:00.000Z', actor: 'u-1', action: 'auth.login', target: null, ip: '127.0.0.1', result: 'success' };
    const session: SessionEvent = { type: 'created', sessionId: 's-1', userId: 'u-1', at: '2025-01-01T00:00:01.000Z', app: 'firefox', profile: 'ephemeral' };
    host.audit.emit(audit);
    host.sessions.emit(session);
    const seen = await getJson(`${api.url}/v1/plugins/test-everything/seen`);
    assert.deepEqual(seen.body, { audit: [audit], sessions: [session] });
  });
});

describe('the test plugin, not listed', () => {
  it('has no route, no provider, no policy', async () => {
    const { host, api } = await boot({});
    try {
      assert.deepEqual(host.plugins.map((p) => p.name), ['auth-local', 'quota-default']);
      const res = await getJson(`${api.url}/v1/plugins/test-everything/hello`);
      assert.equal(res.status, 404);
      assert.deepEqual(res.body, { error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
      assert.deepEqual(await host.auth.authenticate(login('fixture-user', 'fixture-pass')), { result: 'deny', reason: 'no-provider-accepted', provider: null });
      assert.equal(host.quota.policy, 'quota-default');
      assert.deepEqual(await host.quota.check(sub('u-refused'), CREATE), { allowed: true });
    } finally {
      await api.close();
      await host.close();
    }
  });
});
