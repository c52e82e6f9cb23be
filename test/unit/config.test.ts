import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../core/config/load.js';

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

function configFile(content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'hs-cfg-')), 'config.json');
  writeFileSync(file, content);
  return file;
}

describe('config', () => {
  it('has embedded defaults for every field', () => {
    const c = loadConfig({});
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 443 });
    assert.equal(c.publicHost, 'localhost');
    assert.equal(c.sessionDomain, 'sessions.localhost');
    assert.equal(c.dataDir, '.');
    assert.equal(c.gateway.clientHelloTimeoutMs, 10_000);
    assert.equal(c.tls.mode, 'self-signed');
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.gateway), 'config is frozen');
  });

  it('applies environment overrides over the file', () => {
    const file = configFile(JSON.stringify({ publicHost: 'from-file.example', gateway: { maxConnections: 7 } }));
    const c = loadConfig({
      HACKSTREAM_CONFIG: file,
      HACKSTREAM_LISTEN: '[::1]:8443',
      HACKSTREAM_PUBLIC_HOST: 'HS.Example.ORG',
      HACKSTREAM_SESSION_DOMAIN: 's.example.org',
      HACKSTREAM_DATA_DIR: '/var/lib/hackstream',
    });
    assert.deepEqual(c.listen, { host: '::1', port: 8443 });
    assert.equal(c.publicHost, 'hs.example.org');
    assert.equal(c.sessionDomain, 's.example.org');
    assert.equal(c.dataDir, '/var/lib/hackstream');
    assert.equal(c.gateway.maxConnections, 7);
  });

  const bad: Array<{ desc: string; env: NodeJS.ProcessEnv; expect: RegExp }> = [
    { desc: 'listen without a port', env: { HACKSTREAM_LISTEN: '0.0.0.0' }, expect: /^listen \(from HACKSTREAM_LISTEN\): must be "host:port"/ },
    { desc: 'listen port out of range', env: { HACKSTREAM_LISTEN: '0.0.0.0:70000' }, expect: /^listen .*host:port/ },
    { desc: 'public host with an underscore', env: { HACKSTREAM_PUBLIC_HOST: 'bad_host' }, expect: /^publicHost \(from HACKSTREAM_PUBLIC_HOST\): must be a DNS hostname/ },
    { desc: 'public host inside the session domain', env: { HACKSTREAM_PUBLIC_HOST: 'a.sessions.localhost' }, expect: /^publicHost \(from HACKSTREAM_PUBLIC_HOST\): must not be inside the session domain/ },
    { desc: 'redis url with another scheme', env: { HACKSTREAM_REDIS_URL: 'http://x' }, expect: /^redisUrl \(from HACKSTREAM_REDIS_URL\): must be a redis:\/\// },
    { desc: 'files mode without files', env: { HACKSTREAM_TLS_MODE: 'files' }, expect: /^tls\.certFile: tls\.mode "files" needs both/ },
    { desc: 'unknown tls mode', env: { HACKSTREAM_TLS_MODE: 'magic' }, expect: /^tls\.mode \(from HACKSTREAM_TLS_MODE\)/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.desc}, naming the field`, () => {
      const p = problems(c.env);
      assert.ok(p.some((line) => c.expect.test(line)), `no problem matched ${c.expect}: ${JSON.stringify(p)}`);
    });
  }

  it('lists every problem of a config file by path, with the file and the fix', () => {
    const file = configFile(JSON.stringify({ gateway: { maxConnections: 'many', bogus: 1 }, tls: { mode: 'acme', acme: { staging: true, directoryUrl: 'https://ca.example.org/dir' } } }));
    const p = problems({ HACKSTREAM_CONFIG: file });
    assert.ok(p.some((l) => l.startsWith(`gateway.maxConnections (in ${file}):`)), JSON.stringify(p));
    assert.ok(p.some((l) => /^gateway \(in .*\): .*"bogus".*remove it or check its spelling/.test(l)), JSON.stringify(p));
    assert.ok(p.some((l) => l.startsWith('tls.acme.staging') && l.includes('directoryUrl')), JSON.stringify(p));
  });

  it('explains an unreadable or non-JSON config file', () => {
    assert.match(problems({ HACKSTREAM_CONFIG: '/nonexistent/hs.json' })[0] ?? '', /cannot read "\/nonexistent\/hs\.json" \(ENOENT\)/);
    assert.match(problems({ HACKSTREAM_CONFIG: configFile('{nope') })[0] ?? '', /not valid JSON/);
    assert.match(problems({ HACKSTREAM_CONFIG: configFile('[1]') })[0] ?? '', /must hold a JSON object/);
  });
});
