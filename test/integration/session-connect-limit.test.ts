import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';
import { cleanupSessions, launch, testSessions } from '../helpers/sessions.js';

/*
 * config.rateLimits.connectPerMinute against a real session: each connect within the limit
 * issues a token (a command in the container, an audit row); past it 429 RATE_LIMITED with
 * Retry-After, and nothing runs or is audited. (Without containers: api-rate-limits.test.ts.)
 */
describe('connects to a running session past the per-user limit', () => {
  const sessions = testSessions();
  let api: TestApi;
  before(async () => {
    api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions, rateLimits: { connectPerMinute: 2 } } });
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  it('issues connectPerMinute tokens, then refuses with 429 and audits nothing more', async () => {
    const admin = await api.adminToken();
    const s = await launch(api, admin);
    const connect = () => api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: admin });
    for (let i = 0; i < 2; i++) {
      const r = await connect();
      assert.equal(r.status, 200, r.text);
      assert.match((r.json as { token: string }).token, /^hsc_/);
    }
    const refused = await connect();
    assert.equal(refused.status, 429, refused.text);
    assert.equal(errorCode(refused), 'RATE_LIMITED');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.ok(!refused.text.includes('hsc_'));
    const audit = await api.request('GET', `/v1/audit?action=session_connect_token&user=${s.session_id}`, { token: admin });
    assert.equal((audit.json as { items: unknown[] }).items.length, 3, 'the launch’s token and the two connects, not the refused one');
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: admin });
  });
});
