import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { TEST_DATABASE_URL } from '../helpers/store.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `npm run plugin:check -- …` as an author runs it (the same command, without npm's banner). */
function pluginCheck(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/plugin-check.ts', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

describe('npm run plugin:check', () => {
  it('--help explains the argument, the options and the exit status', async () => {
    const r = await pluginCheck(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: npm run plugin:check -- <plugin>/);
    assert.match(r.stdout, /--database-url <url>/);
    assert.match(r.stdout, /Exit status: 0 every check passed, 1 a check failed, 2 usage error/);
  });

  it('passes the third-party fixture by path, one line per check, exit 0', async () => {
    const r = await pluginCheck(['./test/fixtures/plugins/third-party/hs-hello', '--database-url', TEST_DATABASE_URL]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.split('\n').filter((l) => /^(ok|FAIL) /.test(l));
    assert.ok(lines.length >= 6 && lines.every((l) => l.startsWith('ok ')), r.stdout);
    assert.match(r.stdout, /migrations apply, then init and close succeed — 1 migration\(s\)/);
    assert.match(r.stdout, /All \d+ checks passed\./);
  });

  it('fails a plugin for another contract version with exit 1 and the reason', async () => {
    const r = await pluginCheck(['./test/fixtures/plugins/third-party/hs-old']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAIL {2}loads through the real loader .* — plugin acme-old \(\.\/test\/fixtures\/plugins\/third-party\/hs-old\) was written for plugin contract 1/);
  });

  it('refuses a missing argument with exit 2 and the usage', async () => {
    const r = await pluginCheck([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /give exactly one plugin/);
  });
});
