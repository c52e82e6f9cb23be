import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import type { Plugin } from '../../core/plugin/contract.js';
import { startPluginHost } from '../../core/plugin/host.js';
import { loadPlugins, type LoadedPlugin } from '../../core/plugin/loader.js';
import { KNOWN_PLUGINS } from '../../core/plugin/registry.js';
import { fakeServices } from '../fixtures/plugins/harness.js';

/** Open handles by type, e.g. {Timeout: 1, TCPSocketWrap: 2}. */
async function openHandles(): Promise<Record<string, number>> {
  await tick();
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/** The plugin with its example config and its dependencies (with empty options), through the real loader. */
async function loadWithExample(name: string): Promise<{ self: LoadedPlugin; all: LoadedPlugin[] }> {
  const declared = (await KNOWN_PLUGINS[name]?.()) as Partial<Plugin> | undefined;
  const deps = Object.fromEntries((declared?.dependsOn ?? []).map((d) => [d, {}]));
  const all = await loadPlugins({ ...deps, [name]: declared?.exampleConfig });
  const self = all.find((p) => p.plugin.name === name);
  assert.ok(self, `${name} was loaded`);
  return { self, all };
}

/** Every plugin in the static registry passes this suite. */
describe('plugin contract', () => {
  for (const name of Object.keys(KNOWN_PLUGINS)) {
    describe(name, () => {
      it('loads through the real loader with its example config, after its dependencies', async () => {
        const { self, all } = await loadWithExample(name);
        assert.equal(self.plugin.name, name);
        assert.match(self.plugin.version, /^\d+\.\d+\.\d+/);
        for (const dep of self.plugin.dependsOn ?? []) {
          assert.ok(all.findIndex((p) => p.plugin.name === dep) < all.indexOf(self), `${dep} comes first`);
        }
      });

      it('its example config validates, its defaults suffice, unknown options are refused', async () => {
        const { self } = await loadWithExample(name);
        const schema = self.plugin.configSchema;
        assert.equal(schema.safeParse(self.plugin.exampleConfig).success, true);
        assert.equal(schema.safeParse({}).success, true, 'an empty options object is enough');
        assert.equal(schema.safeParse({ noSuchOption: 1 }).success, false);
        assert.ok(Object.isFrozen(self.options), 'options reach the plugin frozen');
      });

      it('init then close leaves no open handles', async () => {
        const { all } = await loadWithExample(name);
        const before = await openHandles();
        const host = await startPluginHost(all, { logger: silentLogger(), services: fakeServices() });
        assert.ok(host.plugins.some((p) => p.name === name));
        await host.close();
        assert.deepEqual(await openHandles(), before);
      });
    });
  }
});
