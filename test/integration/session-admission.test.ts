import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { ConnectDescriptor } from '../../core/sessions/view.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { waitFor } from '../helpers/net.js';
import { cleanupSessions, launch, testSessions, waitForSession } from '../helpers/sessions.js';

/*
 * Issue 12: only the client that asked reaches xpra. xpra 3.1 speaks before it authenticates,
 * so a session's route admits only the address that called POST /v1/sessions (or /connect),
 * until that connect token expires; any other address gets a TLS access_denied alert from the
 * edge and never reaches the container, and such knocking never makes a session "connected".
 * Real Docker, the real session image and its xpra, the real gateway; clients dial from
 * 127.0.0.1 and 127.0.0.2 (two addresses of this host's loopback).
 */
describe('session admission: tunnels only from the address that asked for the connect token', () => {
  const sessions = testSessions({ connectTokenTtlSeconds: 8 });
  let api: TestApi;
  let alice: string;

  before(async () => {
    api = await startApi({ config: { sessions } });
    await api.createUser('alice', 'alice-password-1', { quota: { max_sessions: 2 } });
    alice = (await api.login('alice', 'alice-password-1')).access_token;
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  /** A TLS handshake with the session's xpra (its certificate verified against the session CA) from `from`. */
  function dial(c: ConnectDescriptor, from: string): Promise<{ socket: tls.TLSSocket } | { refused: string }> {
    return new Promise((resolve) => {
      const raw = net.connect({ host: '127.0.0.1', port: api.port, localAddress: from });
      raw.on('error', () => {});
      const s = tls.connect({ socket: raw, servername: c.sni, ca: c.ca_cert });
      s.once('secureConnect', () => resolve({ socket: s }));
      s.once('error', (err: NodeJS.ErrnoException) => resolve({ refused: err.code ?? err.message }));
      s.once('close', () => resolve({ refused: 'closed' }));
    });
  }

  it('admits the launching address, refuses another one, and admits that one once it calls /connect', async () => {
    const s = await launch(api, alice);
    const other = await dial(s.connect, '127.0.0.2');
    assert.deepEqual(other, { refused: 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED' }, 'an address that never called the API is refused');
    const mine = await dial(s.connect, '127.0.0.1');
    assert.ok('socket' in mine, `the launching address reaches xpra: ${JSON.stringify(mine)}`);
    mine.socket.destroy();

    const r = await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: alice, localAddress: '127.0.0.2' });
    assert.equal(r.status, 200, r.text);
    const now = await dial(r.json as ConnectDescriptor, '127.0.0.2');
    assert.ok('socket' in now, `after its own /connect, 127.0.0.2 reaches xpra: ${JSON.stringify(now)}`);
    now.socket.destroy();
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: alice });
  });

  it('refused knocking never makes the session "connected"; an admission ends with its token, an open tunnel does not', async () => {
    const s = await launch(api, alice);
    await waitForSession(api, alice, s.session_id, (v) => v.state === 'ready' || v.state === 'idle');
    for (let i = 0; i < 10; i++) assert.ok('refused' in (await dial(s.connect, '127.0.0.2')));
    const view = await waitForSession(api, alice, s.session_id, () => true);
    assert.notEqual(view.state, 'connected', 'refused connections are not tunnels');
    assert.equal(api.gw.app.gateway.tunnelCount(s.connect.sni), 0);

    const open = await dial(s.connect, '127.0.0.1');
    assert.ok('socket' in open);
    assert.ok(await waitFor(() => api.gw.app.gateway.tunnelCount(s.connect.sni) === 1, 30_000), 'the admitted tunnel is open');
    const expires = Date.parse(s.connect.expires_at);
    assert.ok(await waitFor(() => Date.now() > expires + 250, 30_000), 'the connect token expired');
    assert.deepEqual(await dial(s.connect, '127.0.0.1'), { refused: 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED' }, 'no new tunnel once the token expired');
    assert.ok(!open.socket.destroyed, 'the tunnel opened in time is still open');
    assert.equal(api.gw.app.gateway.tunnelCount(s.connect.sni), 1);
    open.socket.destroy();
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: alice });
  });
});
