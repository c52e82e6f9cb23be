import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { runAdminCli, type CliIo } from '../../core/admin-cli.js';
import { LABELS } from '../../core/sessions/runtime.js';
import type { SessionView } from '../../core/sessions/view.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { waitFor } from '../helpers/net.js';
import { cleanupSessions, containersOf, launch, testSessions } from '../helpers/sessions.js';

/*
 * Issue 12: a user disabled by another process — here `hackstream admin disable`, which writes
 * to the store the running server uses — loses their live sessions at once: the commit's
 * Postgres NOTIFY reaches the server, which reconciles. The server's periodic reconcile is set
 * to an hour, so nothing else can explain the cut. Real Docker, a real TLS connection through
 * the gateway to the session's xpra.
 */
describe('admin CLI: disabling a user ends their live sessions on the running server (Postgres NOTIFY)', () => {
  const sessions = testSessions({ reconcileIntervalSeconds: 3600 });
  let api: TestApi;

  before(async () => {
    api = await startApi({ db: 'postgres', kv: 'memory', config: { sessions } });
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  it('the attached client is cut, the container removed and the stop audited with the cause', async () => {
    const admin = await api.adminToken();
    await api.createUser('fritz', 'fritz-password-12', { quota: { max_sessions: 2 } });
    const token = (await api.login('fritz', 'fritz-password-12')).access_token;
    const s = await launch(api, token);
    const sock = tls.connect({ host: '127.0.0.1', port: api.port, servername: s.connect.sni, ca: s.connect.ca_cert });
    sock.on('error', () => {});
    let isClosed = false;
    sock.once('close', () => void (isClosed = true));
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('close', () => reject(new Error('the TLS connection to the session closed before its handshake')));
    });

    let out = '';
    const io: CliIo = { out: (t) => void (out += t), err: (t) => void (out += t), readLine: async () => '' };
    const env = { HACKSTREAM_DATA_DIR: api.dataDir, HACKSTREAM_DATABASE_URL: api.databaseUrl, HACKSTREAM_LOG_LEVEL: 'silent' };
    assert.equal(await runAdminCli(['disable', 'fritz'], io, env), 0, out);

    const containerGone = async () => !(await containersOf(sessions.instanceId)).some((c) => c.Labels[LABELS.session] === s.session_id);
    assert.ok(await waitFor(() => isClosed, 30_000), 'the attached client was cut (the route was withdrawn)');
    assert.ok(await waitFor(containerGone, 30_000), 'the container was removed');
    // The container goes before the row is finished (route, container, then stopped): wait for the state.
    const state = async () => ((await api.request('GET', `/v1/sessions/${s.session_id}`, { token: admin })).json as SessionView).state;
    assert.ok(await waitFor(async () => (await state()) === 'stopped', 30_000), `the session ended stopped (now ${await state()})`);
    const rows = await api.request('GET', `/v1/audit?user=${s.session_id}&action=session_stopped`, { token: admin });
    const stop = (rows.json as { items: Array<{ details: Record<string, unknown> }> }).items[0];
    assert.deepEqual([stop?.details.reason, stop?.details.cause], ['admin', 'user-disabled']);
  });
});
