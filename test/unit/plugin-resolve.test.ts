import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../core/config/load.js';
import { PluginError } from '../../core/plugin/errors.js';
import { loadPlugins, type LoadOptions } from '../../core/plugin/loader.js';
import { SERVER_ROOT } from '../../core/plugin/resolve.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));
const HELLO = join(FIXTURES, 'third-party/hs-hello');
const OLD = join(FIXTURES, 'third-party/hs-old');

/** A plugin module's source: `fields` are extra properties of the default export. */
const pluginSource = (name: string, fields = '') =>
  `import { z } from 'zod';\nexport default { name: ${JSON.stringify(name)}, version: '1.0.0', contract: 2, configSchema: z.object({}).strict(), exampleConfig: {}, async init() {}${fields ? `, ${fields}` : ''} };\n`;

describe('plugin loader: keys by path and by package name', () => {
  let root: string;
  let opts: LoadOptions;
  const write = (rel: string, text: string) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  };
  const link = (target: string, rel: string) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    symlinkSync(target, join(root, rel));
  };
  const refusal = async (enabled: Record<string, unknown>, o: LoadOptions = opts): Promise<unknown> =>
    loadPlugins(enabled, o).then(() => assert.fail('accepted'), (e: unknown) => e);

  before(() => {
    // The config's folder; its node_modules lets the plugin files written here import zod.
    root = mkdtempSync(join(tmpdir(), 'hs-plugin-resolve-'));
    symlinkSync(join(SERVER_ROOT, 'node_modules'), join(root, 'node_modules'));
    opts = { baseDir: root, pluginsDir: join(root, 'plugins'), serverRoot: join(root, 'server') };
    write('single/x.ts', pluginSource('acme-single'));
    write('indexed/index.ts', pluginSource('acme-indexed'));
    write('mained/package.json', JSON.stringify({ name: 'mained', main: 'lib/entry.ts' }));
    write('mained/lib/entry.ts', pluginSource('acme-mained', "dependsOn: ['acme-indexed']"));
    write('dangling/package.json', JSON.stringify({ name: 'dangling', main: 'gone.js' }));
    write('bad-name/index.ts', pluginSource('Acme_Bad'));
    link(HELLO, 'plugins/node_modules/@acme/hs-hello');
    link(OLD, 'plugins/hs-old');
    link(HELLO, 'server/node_modules/@acme/hs-served');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const found: { desc: string; key: string; name: string; source: RegExp }[] = [
    { desc: 'a file, relative to the config folder', key: './single/x.ts', name: 'acme-single', source: /^\.\/single\/x\.ts$/ },
    { desc: 'a folder with index.ts', key: './indexed', name: 'acme-indexed', source: /^\.\/indexed$/ },
    { desc: 'a folder whose package.json exports "." (import condition)', key: HELLO, name: 'acme-hello', source: /third-party\/hs-hello$/ },
    { desc: 'a package in pluginsDir/node_modules', key: '@acme/hs-hello', name: 'acme-hello', source: /^@acme\/hs-hello from .*\/plugins\/node_modules\/@acme\/hs-hello$/ },
    { desc: "a package in the server's node_modules", key: '@acme/hs-served', name: 'acme-hello', source: /^@acme\/hs-served from .*\/server\/node_modules\/@acme\/hs-served$/ },
  ];
  for (const c of found) {
    it(`loads ${c.desc}`, async () => {
      const [loaded] = await loadPlugins({ [c.key]: {} }, opts);
      assert.equal(loaded?.plugin.name, c.name);
      assert.match(loaded?.source ?? '', c.source);
    });
  }

  it('a folder uses package.json "main"; dependsOn names plugins, not keys', async () => {
    const all = await loadPlugins({ './mained': {}, './indexed': {} }, opts);
    assert.deepEqual(all.map((p) => p.plugin.name), ['acme-indexed', 'acme-mained']);
  });

  it('built-ins win over packages and keep their name as key', async () => {
    const [loaded] = await loadPlugins({ 'auth-local': {} }, opts);
    assert.equal(loaded?.source, 'built-in');
  });

  it('refuses a plugin written for another contract version, naming it and where it came from', async () => {
    const err = await refusal({ 'auth-local': {}, 'hs-old': {}, './indexed': { nope: 1 } });
    assert.ok(err instanceof ConfigError, String(err));
    assert.deepEqual(err.problems[0], 'plugin acme-old (hs-old) was written for plugin contract 1; this HackStream implements contract 2');
    assert.match(err.problems[1] ?? '', /^plugins\.\.\/indexed\.?: .*"nope".*remove it/, 'the other problems are listed too');
  });

  const unresolved: { desc: string; key: string; problem: RegExp }[] = [
    { desc: 'a path to nothing', key: './nowhere', problem: /^plugins\.\.\/nowhere: no file or folder at \.\/nowhere \(resolved to .*\/nowhere\)$/ },
    { desc: 'a package.json pointing at a missing file', key: './dangling', problem: /package\.json points at gone\.js, which does not exist in \.\/dangling/ },
    { desc: 'a package installed nowhere', key: '@acme/hs-missing', problem: /unknown plugin; known plugins: [a-z, -]*auth-local[a-z, -]* \(built-in\).*looked for the package in .*server\/node_modules\/@acme\/hs-missing, .*plugins\/node_modules\/@acme\/hs-missing, .*plugins\/@acme\/hs-missing$/ },
  ];
  for (const c of unresolved) {
    it(`refuses ${c.desc} with a ConfigError`, async () => {
      const err = await refusal({ [c.key]: {} });
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0] ?? '', c.problem);
    });
  }

  it('refuses two keys that load plugins of the same name', async () => {
    const err = await refusal({ [HELLO]: {}, '@acme/hs-hello': {} });
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.problems[0] ?? '', /^plugins\.@acme\/hs-hello: its plugin is named "acme-hello", like the one from .*hs-hello; plugin names must be unique$/);
  });

  it('refuses a plugin name that cannot name a route or schema (PluginError)', async () => {
    const err = await refusal({ './bad-name': {} });
    assert.ok(err instanceof PluginError, String(err));
    assert.match(err.message, /plugin "\.\/bad-name \(\.\/bad-name\)" does not follow the plugin contract: name must be 1–64 lowercase/);
  });
});
