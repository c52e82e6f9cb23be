import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { ConnectDescriptor } from '../../core/sessions/view.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { cleanupSessions, launch, testSessions, waitForSession } from '../helpers/sessions.js';

/*
 * Issue 12: "count only admitted, authenticated tunnels as connected". Real Docker, the real
 * session image's xpra 3.1 and the real edge. An admitted address that keeps a TLS tunnel open
 * to the session's xpra without ever logging in (reopening it whenever it closes) must not keep
 * the session "connected": the session stays idle and its idle timeout stops it. Before, any
 * tunnel open for 1.5 s counted, and such knocking kept a session alive until its deadline.
 */

const IDLE_S = 20;
const sessions = testSessions({ idleTimeoutCapSeconds: IDLE_S, sweepIntervalMs: 1000, connectTokenTtlSeconds: 60 });
const USER = { username: 'knocker', password: 'Knocker-Password-4217' };

/** Keeps one TLS tunnel open to the session's xpra (its certificate verified), never sending xpra's hello. */
function knock(port: number, c: ConnectDescriptor): { tunnels: () => number; refused: () => string | undefined; stop: () => void } {
  let stopped = false;
  let opened = 0;
  let refused: string | undefined;
  let current: tls.TLSSocket | undefined;
  const dial = (): void => {
    if (stopped) return;
    const s = tls.connect({ socket: net.connect({ host: '127.0.0.1', port }), servername: c.sni, ca: c.ca_cert });
    current = s;
    let up = false;
    s.once('secureConnect', () => {
      up = true;
      opened++;
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (!up) refused = err.code ?? err.message;
    });
    // xpra may drop a connection that never says hello: open another, as an attacker would.
    s.once('close', () => {
      if (up && !refused) dial();
    });
  };
  dial();
  return {
    tunnels: () => opened,
    refused: () => refused,
    stop: () => {
      stopped = true;
      current?.destroy();
    },
  };
}

describe('knocking without logging in never keeps a session connected', () => {
  let api: TestApi;
  let token: string;

  before(async () => {
    api = await startApi({ config: { sessions } });
    await api.createUser(USER.username, USER.password);
    token = (await api.login(USER.username, USER.password)).access_token;
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  it('a tunnel held open with no xpra login: not connected, stopped at its idle timeout', { timeout: 300_000 }, async () => {
    const s = await launch(api, token);
    const k = knock(api.port, s.connect);
    try {
      // The first tunnel is through (the edge admitted it and xpra's TLS answered).
      await waitForSession(api, token, s.session_id, () => {
        assert.equal(k.refused(), undefined, `the edge refused the knocker: ${k.refused()}`);
        return k.tunnels() > 0 && api.gw.app.gateway.tunnelCount(s.connect.sni) > 0;
      });
      const end = await waitForSession(api, token, s.session_id, (v) => {
        assert.notEqual(v.state, 'connected', 'a tunnel with no xpra login made the session connected');
        return v.state === 'stopped' || v.state === 'failed';
      }, (IDLE_S + 150) * 1000);
      assert.equal(end.state, 'stopped');
      const admin = await api.adminToken();
      const rows = await api.request('GET', `/v1/audit?user=${s.session_id}`, { token: admin });
      const actions = (rows.json as { items: Array<{ action: string; details: { reason?: string } }> }).items;
      assert.ok(!actions.some((r) => r.action === 'session_connected'), `never audited as connected: ${actions.map((r) => r.action).join(', ')}`);
      const stopped = actions.find((r) => r.action === 'session_stopped');
      assert.equal(stopped?.details.reason, 'idle-timeout');
    } finally {
      k.stop();
    }
  });
});
