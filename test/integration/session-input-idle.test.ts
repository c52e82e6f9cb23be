import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApi, type TestApi } from '../helpers/api.js';
import { startXvfb, until, windowGeometry, xdotool, type Display } from '../helpers/display.js';
import { cleanupSessions, launch, target, testSessions, waitForSession } from '../helpers/sessions.js';
import { xpraAttach } from '../helpers/xpra-attach.js';

/*
 * Input idleness with the real components: a real xpra client attached through the edge to a
 * real session (Docker, xpra, Firefox), the reaper asking xpra through the runtime's
 * activity. While xdotool moves the pointer over the session's window every few seconds the
 * session outlives its idle timeout; left alone with the client still attached, it is
 * stopped as idle-timeout, audited with input: true.
 */

// Long enough for a client to attach on a busy host (the timeout also runs before the attach).
const IDLE_S = 30;
const sessions = testSessions({ idleTimeoutCapSeconds: IDLE_S, sweepIntervalMs: 1000 });
const USER = { username: 'input-idle-user', password: 'Input-Idle-Password-42' };
let api: TestApi;
let display: Display | undefined;

before(async () => {
  display = await startXvfb();
  api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions } });
  await api.createUser(USER.username, USER.password);
});

after(async () => {
  await api?.close();
  await cleanupSessions(sessions);
  display?.close();
});

describe('reaper: an attached client without input is idle', () => {
  it('input every few seconds keeps the session past its idle timeout; without input it is stopped while still attached', { timeout: 240_000 }, async () => {
    const token = (await api.login(USER.username, USER.password)).access_token;
    const s = await launch(api, token);
    const client = xpraAttach(target(api, s.connect), display!.name);
    try {
      await waitForSession(api, token, s.session_id, (v) => { assert.ok(!client.exited(), `the client exited: ${client.output()}`); return v.state === 'connected'; }, 60_000).catch((err: Error) => {
        throw new Error(`${err.message}; the client said: ${client.output()}`);
      });
      const win = await until(async () => (await xdotool(display!, ['search', '--onlyvisible', '--name', 'Firefox'])).split('\n')[0] || undefined, 60_000, 'the Firefox window did not show on the client');
      const box = await windowGeometry(display!, win);

      // Phase 1: the pointer moves over the window every 3 s for more than twice the timeout.
      const end = Date.now() + 2 * IDLE_S * 1000 + 5_000;
      for (let i = 0; Date.now() < end; i++) {
        const x = box.x + Math.floor(box.width / 2) + (i % 2) * 20;
        const y = box.y + Math.floor(box.height / 2) + (i % 2) * 20;
        await xdotool(display!, ['mousemove', String(x), String(y)]);
        const v = await waitForSession(api, token, s.session_id, () => true);
        assert.equal(v.state, 'connected', `with input the session stays connected (client: ${client.output()})`);
        await new Promise((r) => setTimeout(r, 3_000));
      }

      // Phase 2: no more input. The client stays attached until the session stops.
      const stopped = await waitForSession(
        api,
        token,
        s.session_id,
        (v) => {
          assert.ok(!client.exited() || v.state !== 'connected', `the client left before the session stopped: ${client.output()}`);
          return v.state === 'stopped';
        },
        120_000,
      );
      assert.equal(stopped.state, 'stopped');
      const r = await api.request('GET', `/v1/audit?user=${s.session_id}&action=session_stopping`, { token: await api.adminToken() });
      const rows = (r.json as { items: Array<{ details: Record<string, unknown> }> }).items;
      assert.equal(rows.length, 1, r.text);
      assert.equal(rows[0]?.details.reason, 'idle-timeout');
      assert.equal(rows[0]?.details.input, true, 'stopped for want of input, with the client attached');
      assert.ok(Number(rows[0]?.details.idleSeconds) >= IDLE_S);
    } finally {
      client.close();
    }
  });
});
