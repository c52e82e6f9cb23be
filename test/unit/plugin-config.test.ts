import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, configDir, loadConfig, parseConfig, pluginsDirOf } from '../../core/config/load.js';

describe('config: plugin keys and pluginsDir', () => {
  const keys: { desc: string; key: string; ok: boolean }[] = [
    { desc: 'a built-in name', key: 'auth-local', ok: true },
    { desc: 'a scoped package', key: '@acme/hs-ldap', ok: true },
    { desc: 'a package with dots', key: 'hs.foo_bar', ok: true },
    { desc: 'a relative path', key: './plugins/x', ok: true },
    { desc: 'a parent path', key: '../shared/plugin.ts', ok: true },
    { desc: 'an absolute path', key: '/opt/hs/plugins/x', ok: true },
    { desc: 'upper case', key: 'Auth-Local', ok: false },
    { desc: 'a bare relative path', key: 'plugins/x', ok: false },
    { desc: 'a space', key: 'auth local', ok: false },
    { desc: 'an empty key', key: '', ok: false },
  ];
  for (const c of keys) {
    it(`${c.ok ? 'accepts' : 'refuses'} ${c.desc} (${JSON.stringify(c.key)})`, () => {
      const parse = () => parseConfig({ plugins: { [c.key]: {} } });
      if (c.ok) assert.deepEqual(Object.keys(parse().plugins), [c.key]);
      else assert.throws(parse, (err: unknown) => err instanceof ConfigError && /a plugin key is a built-in or npm package name .* or a path starting with \.\/, \.\.\/ or \//.test(err.message));
    });
  }

  const dir = mkdtempSync(join(tmpdir(), 'hs-plugin-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('paths are relative to the config file; pluginsDir defaults to <dataDir>/plugins', () => {
    const file = join(dir, 'hackstream.json');
    writeFileSync(file, JSON.stringify({ dataDir: '/var/lib/hs', plugins: { './x': {} } }));
    const config = loadConfig({ HACKSTREAM_CONFIG: file });
    assert.equal(config.configFile, file);
    assert.equal(configDir(config), dir);
    assert.equal(pluginsDirOf(config), '/var/lib/hs/plugins');
    writeFileSync(file, JSON.stringify({ pluginsDir: 'extra/plugins' }));
    assert.equal(pluginsDirOf(loadConfig({ HACKSTREAM_CONFIG: file })), join(dir, 'extra/plugins'));
  });

  it('without a config file, paths are relative to the working directory', () => {
    const config = loadConfig({});
    assert.equal(config.configFile, undefined);
    assert.equal(configDir(config), process.cwd());
    assert.equal(pluginsDirOf(config), resolve('.', 'plugins'));
  });

  it('configFile cannot be set from the file itself', () => {
    assert.throws(() => parseConfig({ configFile: '/etc/passwd' }), (err: unknown) => err instanceof ConfigError && /configFile/.test(err.message));
  });
});
