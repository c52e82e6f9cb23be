import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../client/errors.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { configureAndLogin, spawnCli, type RunningCli } from '../helpers/cli.js';
import { startXvfb, until, type Display } from '../helpers/display.js';
import { clientNetwork, type ClientNetwork } from '../helpers/netns.js';
import { cleanupSessions, testSessions, waitForSession } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * Issue 13: what ends the wait. The client (bin/hackstream and xpra) is in its own network
 * namespace; its link goes down with every socket in it destroyed. A network that stays away
 * past the give-up ends the CLI with UNREACHABLE; a session stopped on the server while the
 * client was away ends it with SESSION_GONE as soon as the network is back.
 */

const scratch = scratchDirs('hs-cli-outage-');
const sessions = testSessions();
const USER = { username: 'outage-user', password: 'Outage-User-Password-13' };

let api: TestApi;
let net: ClientNetwork;
let display: Display | undefined;
let home: string;
let token: string;
let id: string;
const clis: RunningCli[] = [];

before(async () => {
  display = await startXvfb();
  net = await clientNetwork();
  api = await startApi({ db: 'postgres', kv: 'redis', config: { listen: '0.0.0.0:0', sessions } });
  await api.createUser(USER.username, USER.password);
  token = (await api.login(USER.username, USER.password)).access_token;
  home = scratch();
  await configureAndLogin(api, USER, home, { address: net.hostIp, netns: net.name });
});

after(async () => {
  for (const c of clis) c.kill();
  await Promise.all(clis.map((c) => c.exited(15_000).catch(() => undefined)));
  await api?.close();
  await net?.remove();
  await cleanupSessions(sessions);
  display?.close();
});

function cli(args: string[], env: NodeJS.ProcessEnv = {}): RunningCli {
  const c = spawnCli(args, { home, netns: net.name, env: { DISPLAY: display!.name, ...env } });
  clis.push(c);
  return c;
}

describe('what ends the wait for the network', () => {
  it('the network stays away past the give-up: "gave up", exit 3, the session left running', { timeout: 180_000 }, async () => {
    const c = cli(['launch', 'browser', '--url', 'https://example.org/', '--quality', 'low'], { HACKSTREAM_RECONNECT_GIVE_UP: '15' });
    id = await c.waitFor(/Session ([0-9a-f-]{36}) is ready/, 90_000);
    await waitForSession(api, token, id, (s) => s.state === 'connected', 60_000);
    await net.down();
    try {
      const code = await c.exited(120_000);
      assert.equal(code, EXIT.UNREACHABLE, c.stderr().slice(-2000));
      assert.match(c.stderr(), /reconnecting… cannot reach the server \(ENETUNREACH\)/);
      assert.match(c.stderr(), new RegExp(`gave up re-attaching to session ${id}: the server has been unreachable for \\d+ s .*hackstream attach ${id} once the network is back`));
    } finally {
      await net.up();
    }
    const s = await waitForSession(api, token, id, (v) => ['connected', 'idle'].includes(v.state), 10_000);
    assert.ok(s, 'the session still runs');
  });

  it('the session is stopped while the client is away: back on the network, "has ended", exit 10', { timeout: 180_000 }, async () => {
    assert.ok(id, 'the session runs');
    const c = cli(['attach', id]);
    // Attached again: xpra in the namespace says so once its handshake is done (the server's
    // state may still say connected for the tunnel the give-up left half-open, and a socket
    // that is only established may be cut mid-handshake, which xpra treats differently).
    await c.waitFor(/(Attached to ssl:)/, 60_000).catch((err: Error) => {
      throw new Error(`xpra did not attach from the namespace (${err.message}); the CLI said:\n${c.stdout().slice(-2000)}\n${c.stderr().slice(-2000)}`);
    });
    await net.down();
    await until(async () => (/reconnecting…/.test(c.stderr()) ? true : undefined), 60_000, 'no reconnecting… line').catch((err: Error) => {
      throw new Error(`${err.message}; the CLI said:\n${c.stderr().slice(-3000)}`);
    });
    const stop = await api.request('POST', `/v1/sessions/${id}/stop`, { token });
    assert.equal(stop.status, 200, stop.text);
    await waitForSession(api, token, id, (s) => s.state === 'stopped', 60_000);
    assert.equal(await c.exited(1).catch(() => 'running'), 'running', 'still waiting for the network');
    await net.up();
    const code = await c.exited(60_000);
    assert.equal(code, EXIT.SESSION_GONE, c.stderr().slice(-2000));
    assert.match(c.stderr(), new RegExp(`session ${id} has ended`));
  });
});
