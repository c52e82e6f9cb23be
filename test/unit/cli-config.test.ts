import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { toCliError } from '../../client/api.js';
import { findXpra, XPRA_INSTALL_HINT } from '../../client/attach.js';
import { configDir, loadTokens, saveTokens } from '../../client/config.js';
import { CliError, EXIT } from '../../client/errors.js';
import { formatFingerprint } from '../../client/http.js';
import { scratchDirs } from '../helpers/tmp.js';

const scratch = scratchDirs('hs-cli-unit-');

describe('cli config files', () => {
  const dirCases = [
    { desc: 'XDG_CONFIG_HOME wins', env: { HOME: '/home/a', XDG_CONFIG_HOME: '/xdg' }, expect: '/xdg/hackstream' },
    { desc: 'else ~/.config', env: { HOME: '/home/a' }, expect: '/home/a/.config/hackstream' },
    { desc: 'a relative XDG_CONFIG_HOME is ignored (the spec says so)', env: { HOME: '/home/a', XDG_CONFIG_HOME: 'rel' }, expect: '/home/a/.config/hackstream' },
  ];
  for (const c of dirCases) it(c.desc, () => assert.equal(configDir(c.env), c.expect));

  it('tokens are written 0600 in a 0700 folder', () => {
    const home = scratch();
    const saved = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = home;
    try {
      const t = { accessToken: 'a', refreshToken: 'r', accessExpiresAt: 1, refreshExpiresAt: 'x', username: 'u' };
      saveTokens(t);
      assert.equal(statSync(join(home, 'hackstream')).mode & 0o777, 0o700);
      assert.equal(statSync(join(home, 'hackstream', 'tokens.json')).mode & 0o777, 0o600);
      assert.deepEqual(loadTokens(), t);
    } finally {
      if (saved === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = saved;
    }
  });
});

describe('cli messages', () => {
  const cases = [
    { desc: 'wrong password', status: 401, code: 'AUTH_INVALID_CREDENTIALS', exit: EXIT.AUTH, text: /wrong username or password/ },
    { desc: 'quota reached', status: 409, code: 'QUOTA_EXCEEDED', exit: EXIT.QUOTA, text: /quota reached/ },
    { desc: 'session failed to start', status: 502, code: 'SESSION_START_FAILED', exit: EXIT.SESSION_START_FAILED, text: /failed to start/ },
    { desc: 'runtime unavailable', status: 503, code: 'RUNTIME_UNAVAILABLE', exit: EXIT.RUNTIME_UNAVAILABLE, text: /cannot run sessions/ },
    { desc: 'anything else keeps its code', status: 409, code: 'SESSION_NOT_RUNNING', exit: EXIT.FAILURE, text: /SESSION_NOT_RUNNING/ },
  ];
  for (const c of cases)
    it(c.desc, () => {
      const e = toCliError({ status: c.status, json: { error: { code: c.code, message: 'm' } }, text: '' });
      assert.equal(e.exitCode, c.exit);
      assert.match(e.message, c.text);
    });

  it('exit codes are distinct', () => assert.equal(new Set(Object.values(EXIT)).size, Object.values(EXIT).length));

  it('xpra missing from PATH → the install command', () => {
    assert.throws(() => findXpra({ PATH: scratch() }), (e: unknown) => e instanceof CliError && e.exitCode === EXIT.XPRA_MISSING && e.message === XPRA_INSTALL_HINT);
  });

  it('HACKSTREAM_XPRA naming no executable → the install command and the variable', () => {
    const missing = join(scratch(), 'xpra');
    assert.throws(() => findXpra({ HACKSTREAM_XPRA: missing }), (e: unknown) => e instanceof CliError && e.exitCode === EXIT.XPRA_MISSING && e.message.startsWith(XPRA_INSTALL_HINT) && e.message.includes(missing));
    assert.equal(findXpra({ HACKSTREAM_XPRA: '/bin/sh' }), '/bin/sh');
  });

  it('fingerprints are compared in one form', () => assert.equal(formatFingerprint('ab:cd:ef'), formatFingerprint('ABCDEF')));
});
