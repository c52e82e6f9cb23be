import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXIT } from '../../client/errors.js';
import { startApi } from '../helpers/api.js';
import { configureAndLogin, runCli } from '../helpers/cli.js';
import { cleanupSessions, testSessions } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * What `hackstream launch` says when the server cannot start a session (502/503), each
 * caused for real: an image that is not there, an engine that is not there, a host full.
 */
const scratch = scratchDirs('hs-cli-errors-');
const USER = { username: 'errors-user', password: 'Errors-User-Password-42' };

const CASES = [
  {
    what: 'the configured session image does not exist (502 SESSION_START_FAILED)',
    sessions: { image: 'hackstream/no-such-image:0' },
    exit: EXIT.SESSION_START_FAILED,
    message: /the session failed to start on the server: the host could not start your session; try again or tell your operator, reference hs-[0-9a-f]{12}/,
  },
  {
    what: 'the Docker engine is unreachable (503 RUNTIME_UNAVAILABLE)',
    sessions: { dockerHost: 'unix:///run/hackstream-test-no-such-docker.sock' },
    exit: EXIT.RUNTIME_UNAVAILABLE,
    message: /the server cannot run sessions right now \(RUNTIME_UNAVAILABLE\)/,
  },
  {
    what: 'the host has no memory left for another session (503 CAPACITY_REACHED)',
    sessions: { capacity: { memoryMb: 256 } },
    exit: EXIT.RUNTIME_UNAVAILABLE,
    message: /the server cannot run sessions right now \(CAPACITY_REACHED\): .*try again later/,
  },
];

describe('hackstream launch when the server cannot start a session', () => {
  for (const c of CASES) {
    it(`${c.what}: exits ${c.exit} with a message saying so`, { timeout: 90_000 }, async () => {
      const sessions = { ...testSessions(), ...c.sessions };
      const api = await startApi({ db: 'postgres', config: { sessions } });
      try {
        await api.createUser(USER.username, USER.password);
        const home = scratch();
        await configureAndLogin(api, USER, home);

        const r = await runCli(['launch', 'browser', '--no-attach'], { home });
        assert.equal(r.code, c.exit, `exit ${r.code}\n${r.stderr}`);
        assert.match(r.stderr, c.message);
        assert.equal(r.stdout, '', 'no session id printed');
      } finally {
        await api.close();
        await cleanupSessions(sessions);
      }
    });
  }
});
