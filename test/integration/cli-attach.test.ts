import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EXIT } from '../../client/errors.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { configureAndLogin, spawnCli } from '../helpers/cli.js';
import { startXvfb, type Display } from '../helpers/display.js';
import { cleanupSessions, testSessions, waitForSession } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

const scratch = scratchDirs('hs-cli-attach-');
const sessions = testSessions();
const USER = { username: 'attach-user', password: 'Attach-User-Password-42' };

let api: TestApi;

/** The command names of a process's children. */
async function childCommands(pid: number): Promise<string[]> {
  const r = await promisify(execFile)('ps', ['--ppid', String(pid), '-o', 'comm=']).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort();
}
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

describe('hackstream launch with the real xpra client', () => {
  it('attaches through the gateway, re-attaches by itself when the tunnel is cut, and ends when the session stops', { timeout: 120_000 }, async () => {
    const home = scratch();
    await configureAndLogin(api, USER, home);

    const cli = spawnCli(['launch', 'browser', '--url', 'https://example.org/', '--quality', 'low'], { home, env: { DISPLAY: display!.name } });
    try {
      const token = (await api.login(USER.username, USER.password)).access_token;
      const id = await cli.waitFor(/Session ([0-9a-f-]{36}) is ready/, 60_000);
      const first = await waitForSession(api, token, id, (s) => s.state === 'connected', 45_000);
      assert.ok(!cli.stderr().includes('hst_') && !cli.stdout().includes('hst_'), 'no token printed');
      // While attached only the shell waits on xpra: no Node process stays up (docs/clients.md).
      assert.deepEqual(await childCommands(cli.pid), ['xpra']);

      // Cut the tunnel at the gateway, as a network drop would.
      assert.ok(api.gw.app.gateway.closeTunnels(first.hostname ?? '') >= 1, 'a tunnel was cut');
      await cli.waitFor(/re-attaching/, 30_000);
      await waitForSession(api, token, id, (s) => s.state === 'idle', 15_000).catch(() => undefined);
      await waitForSession(api, token, id, (s) => s.state === 'connected', 45_000);
      assert.deepEqual(await childCommands(cli.pid), ['xpra'], 'the re-attached xpra, again without Node');

      const stop = await api.request('POST', `/v1/sessions/${id}/stop`, { token });
      assert.equal(stop.status, 200, stop.text);
      const code = await cli.exited(30_000);
      // xpra reports a server shutdown as 0 or as a lost connection (then the CLI finds the session gone).
      assert.ok(code === EXIT.OK || code === EXIT.SESSION_GONE, `exit ${code}\n${cli.stderr()}`);
      if (code === EXIT.SESSION_GONE) assert.match(cli.stderr(), /session [0-9a-f-]+ has ended/);
    } finally {
      cli.kill();
    }
  });
});
