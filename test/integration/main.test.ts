import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { httpsRequest } from '../helpers/gateway.js';
import { spawnHackstream, waitForLine } from '../helpers/server-process.js';

// No pre-warmed session containers: these tests are about the process, not sessions.
const run = (env: Record<string, string>) => spawnHackstream({ HACKSTREAM_POOL_SIZE: '0', ...env });

describe('hackstream process (server/main.ts)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hs-main-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('starts with defaults plus a listen override, creates its CA, serves /health, and stops cleanly on SIGTERM', async () => {
    const p = run({ HACKSTREAM_LISTEN: '127.0.0.1:0', HACKSTREAM_DATA_DIR: dataDir, HACKSTREAM_PUBLIC_HOST: 'hackstream.test' });
    try {
      const line = await waitForLine(p, /"msg":"hackstream listening"/, 120_000);
      const { port } = JSON.parse(line) as { port: number };
      const ca = readFileSync(join(dataDir, 'certs/ca.crt'), 'utf8');
      assert.equal(statSync(join(dataDir, 'certs/ca.key')).mode & 0o777, 0o600);
      const r = await httpsRequest(port, ca, '/health');
      assert.equal(r.status, 200);
      const key = readFileSync(join(dataDir, 'certs/ca.key'), 'utf8').split('\n')[1] ?? 'unreachable';
      assert.ok(!p.lines.join('\n').includes(key) && !p.stderr().includes(key), 'no key material in the logs');
      p.child.kill('SIGTERM');
      // On a first start the session image is still building: stopping must cancel it, not wait.
      assert.equal(await p.exit, 0, `not a clean stop; the log's warnings:\n${p.lines.filter((l) => /"level":[456]0/.test(l)).join('\n')}`);
      assert.ok(p.lines.some((l) => l.includes('"msg":"shutting down"')));
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('refuses an invalid config with exit code 78 and a message naming the field and the fix', async () => {
    const p = run({ HACKSTREAM_LISTEN: 'localhost', HACKSTREAM_DATA_DIR: dataDir });
    assert.equal(await p.exit, 78);
    assert.match(p.stderr(), /Invalid HackStream configuration:\n {2}- listen \(from HACKSTREAM_LISTEN\): must be "host:port", e\.g\. "0\.0\.0\.0:443"/);
  });

  it('refuses a bad plugin option or an unknown plugin with exit code 78, naming plugin and field', async () => {
    const file = join(dataDir, 'plugins.json');
    writeFileSync(file, JSON.stringify({ plugins: { 'auth-local': {}, 'quota-default': { user: { maxSessions: 'lots' } }, 'auth-nope': {} } }));
    const p = run({ HACKSTREAM_CONFIG: file, HACKSTREAM_LISTEN: '127.0.0.1:0', HACKSTREAM_DATA_DIR: dataDir });
    assert.equal(await p.exit, 78);
    assert.match(p.stderr(), /plugins\.quota-default\.user\.maxSessions: .*expected number/);
    assert.match(p.stderr(), /plugins\.auth-nope: unknown plugin; known plugins: [a-z, -]*auth-local[a-z, -]*quota-default \(built-in\)/);
  });

  it('explains a port that is already taken', async () => {
    const first = run({ HACKSTREAM_LISTEN: '127.0.0.1:0', HACKSTREAM_DATA_DIR: dataDir, HACKSTREAM_PUBLIC_HOST: 'hackstream.test' });
    try {
      const { port } = JSON.parse(await waitForLine(first, /"msg":"hackstream listening"/, 120_000)) as { port: number };
      // Its own data dir: the embedded database admits one process per data dir.
      const secondDir = mkdtempSync(join(tmpdir(), 'hs-main-2-'));
      after(() => rmSync(secondDir, { recursive: true, force: true }));
      const second = run({ HACKSTREAM_LISTEN: `127.0.0.1:${port}`, HACKSTREAM_DATA_DIR: secondDir, HACKSTREAM_PUBLIC_HOST: 'hackstream.test' });
      assert.equal(await second.exit, 1);
      assert.match(second.lines.join('\n'), /the port is already in use: stop the other server or set HACKSTREAM_LISTEN/);
    } finally {
      first.child.kill('SIGKILL');
    }
  });

  it('prints usage with --help', async () => {
    const p = spawnHackstream({}, { args: ['--help'] });
    const code = await p.exit;
    const out = p.lines.join('\n');
    assert.equal(code, 0);
    assert.match(out, /HACKSTREAM_LISTEN \(default 0\.0\.0\.0:443\)/);
  });
});
