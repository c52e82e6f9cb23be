import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { SessionView } from '../../core/sessions/view.js';
import { errorCode, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';
import { cleanupSessions, testSessions } from '../helpers/sessions.js';

/*
 * A launch the host fails (caused for real: an image tag that does not exist, an engine
 * socket that is not there, a container that is not ready in time) answers the user a stable
 * code and a plain sentence with a reference; the runtime's own words (engine socket, image,
 * container state) are in the server log, and in the session_failed audit row, under it.
 */

const PLAIN = /^the host could not start your session; try again or tell your operator, reference (hs-[0-9a-f]{12})$/;
/** What must never reach a user. */
const INTERNALS = /docker|\.sock|iptables|\/run\/|\/var\/|hackstream\/firefox-xpra|container|engine|agent/i;

function plainFailure(r: ApiResponse, status: number, code: string): string {
  assert.equal(r.status, status, r.text);
  assert.equal(errorCode(r), code);
  const e = (r.json as { error: { message: string; details?: { reference?: string } } }).error;
  const m = PLAIN.exec(e.message);
  assert.ok(m, `plain message: ${e.message}`);
  assert.equal(e.details?.reference, m[1]);
  assert.doesNotMatch(r.text, INTERNALS);
  return m[1]!;
}

/** The log lines that carry `reference`, joined. */
function logged(api: TestApi, reference: string): string {
  return api.logs.filter((l) => l.includes(reference)).join('\n');
}

/** A describe block whose API runs sessions with `overrides` (a host fault), for `body`. */
function withFaultyHost(title: string, overrides: Parameters<typeof testSessions>[0], body: (api: () => TestApi) => void, db?: 'postgres'): void {
  describe(title, () => {
    const sessions = testSessions(overrides);
    let api: TestApi;
    before(async () => {
      api = await startApi({ ...(db ? { db } : {}), captureLogs: true, config: { sessions } });
    });
    after(async () => {
      await api?.close();
      await cleanupSessions(sessions);
    });
    body(() => api);
  });
}

const missing = `hackstream/firefox-xpra:missing-${randomBytes(4).toString('hex')}`;
withFaultyHost('a launch with a session image tag that does not exist', { image: missing }, (api) => {
  it('answers 502 SESSION_START_FAILED in plain words with a reference the log explains', async () => {
    const r = await api().request('POST', '/v1/sessions', { token: await api().adminToken(), body: { app: 'firefox' } });
    const reference = plainFailure(r, 502, 'SESSION_START_FAILED');
    assert.match(logged(api(), reference), /session image is not available/);
  });
});

const socket = `/run/hackstream-test-${randomBytes(3).toString('hex')}.sock`;
withFaultyHost('a launch with no engine at the configured socket', { dockerHost: `unix://${socket}` }, (api) => {
  it('answers 503 RUNTIME_UNAVAILABLE without the socket path; the log has it under the reference', async () => {
    const r = await api().request('POST', '/v1/sessions', { token: await api().adminToken(), body: { app: 'firefox' } });
    const reference = plainFailure(r, 503, 'RUNTIME_UNAVAILABLE');
    assert.ok(logged(api(), reference).includes(socket), 'the operator finds the socket path under the reference');
  });
});

withFaultyHost(
  'a launch whose container is not ready in time',
  { readyTimeoutMs: 1000 },
  (api) => {
    it('answers plainly; the failed session reads the same; the audit row keeps the detail under the reference', async () => {
      const admin = await api().adminToken();
      const r = await api().request('POST', '/v1/sessions', { token: admin, body: { app: 'firefox' } });
      const reference = plainFailure(r, 502, 'SESSION_START_FAILED');
      assert.match(logged(api(), reference), /not ready in time/);

      const list = await api().request('GET', '/v1/sessions?ended=1', { token: admin });
      const [failed] = (list.json as { items: SessionView[] }).items;
      assert.equal(failed?.state, 'failed');
      assert.match(failed.failure_reason ?? '', PLAIN);
      assert.ok(failed.failure_reason?.endsWith(reference));

      const audit = await api().request('GET', `/v1/audit?action=session_failed&user=${failed.session_id}`, { token: admin });
      const row = (audit.json as { items: Array<{ details: { reference?: string; detail?: string; error?: string } }> }).items[0];
      assert.equal(row?.details.reference, reference);
      assert.match(row?.details.detail ?? '', /not ready in time/);
    });
  },
  'postgres',
);
