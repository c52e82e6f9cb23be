import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { EXIT } from '../../client/errors.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { configureAndLogin, spawnCli } from '../helpers/cli.js';
import { startXvfb, until, type Display } from '../helpers/display.js';
import { cleanupSessions, testSessions } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * Issue 13: a running session keeps its login alive past the idle lifetime, but never past the
 * absolute one. When the connection drops after that, the CLI (no terminal to prompt on, as
 * under the launcher) must say to log in again and exit AUTH, not wait or hang.
 */

const ABSOLUTE_MS = 30_000;
const scratch = scratchDirs('hs-cli-expiry-');
const sessions = testSessions();
const USER = { username: 'expiry-user', password: 'Expiry-User-Password-13' };

let api: TestApi;
let db: pg.Client;
let display: Display | undefined;

before(async () => {
  display = await startXvfb();
  api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions }, auth: { accessTtlMs: 5_000, refreshIdleMs: 10_000, refreshAbsoluteMs: ABSOLUTE_MS } });
  await api.createUser(USER.username, USER.password);
  db = new pg.Client({ connectionString: api.databaseUrl });
  await db.connect();
});

after(async () => {
  await db?.end();
  await api?.close();
  await cleanupSessions(sessions);
  display?.close();
});

async function session(id: string): Promise<{ state: string; hostname: string | null } | undefined> {
  return (await db.query<{ state: string; hostname: string | null }>('SELECT state, hostname FROM sessions WHERE id = $1', [id])).rows[0];
}

describe('the login ends while a session is attached', () => {
  it('past the absolute lifetime a dropped connection ends the CLI with AUTH and "log in again", the session left running', { timeout: 180_000 }, async () => {
    const home = scratch();
    await configureAndLogin(api, USER, home);
    // The family ends at the latest here (the server counts from within the login call).
    const familyEnd = Date.now() + ABSOLUTE_MS;

    const cli = spawnCli(['launch', 'browser', '--url', 'https://example.org/', '--quality', 'low'], { home, env: { DISPLAY: display!.name } });
    try {
      const id = await cli.waitFor(/Session ([0-9a-f-]{36}) is ready/, 90_000);
      const s = await until(async () => {
        const row = await session(id);
        return row?.state === 'connected' ? row : undefined;
      }, 60_000, 'the CLI did not attach');
      // Attached past the family's absolute end (the session kept it alive past the idle one).
      await new Promise((r) => setTimeout(r, Math.max(0, familyEnd + 1_000 - Date.now())));
      assert.ok(api.gw.app.gateway.closeTunnels(s.hostname ?? '') >= 1, 'a tunnel was cut');

      const code = await cli.exited(90_000);
      assert.equal(code, EXIT.AUTH, cli.stderr().slice(-2000));
      assert.match(cli.stderr(), /your login has expired.*log in again \(hackstream login\), then hackstream attach [0-9a-f-]{36}/);
      assert.doesNotMatch(cli.stderr(), /reconnecting…/, 'an expired login is not waited out as an outage');
      const after = await session(id);
      assert.ok(after && ['connected', 'idle'].includes(after.state), `the session still runs (${after?.state})`);
    } finally {
      cli.kill();
    }
  });
});
