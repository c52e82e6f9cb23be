import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeEach, describe, it } from 'node:test';
import { z } from 'zod';
import { ConfigError } from '../../core/config/load.js';
import { definePlugin, type PluginContext } from '../../core/plugin/contract.js';
import { PluginError } from '../../core/plugin/errors.js';
import { startPlugins, type HostLimits } from '../../core/plugin/host.js';
import { loadPlugins } from '../../core/plugin/loader.js';
import { KNOWN_PLUGINS } from '../../core/plugin/registry.js';
import { kept } from '../fixtures/plugins/broken.js';
import { capturingLogger, fakeServices, TEST_CATALOGUE } from '../fixtures/plugins/harness.js';
import { journal } from '../fixtures/plugins/ordered.js';

function start(enabled: Record<string, unknown>, limits: Partial<HostLimits> = {}, log = capturingLogger()) {
  return startPlugins(enabled, { logger: log.logger, services: fakeServices(), catalogue: TEST_CATALOGUE, limits });
}

async function refusal(enabled: Record<string, unknown>, limits: Partial<HostLimits> = {}): Promise<Error> {
  const err: unknown = await start(enabled, limits).then(
    () => assert.fail('start-up should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof Error);
  return err;
}

beforeEach(() => {
  journal.length = 0;
});

describe('plugin loader: operator mistakes are ConfigErrors naming plugin and field', () => {
  const cases: { desc: string; enabled: Record<string, unknown>; problems: RegExp[] }[] = [
    {
      desc: 'a wrong type names plugin and field',
      enabled: { 'quota-default': { user: { maxSessions: 'two' } } },
      problems: [/^plugins\.quota-default\.user\.maxSessions: .*expected number, received string/],
    },
    {
      desc: 'an unknown option is refused with a hint',
      enabled: { 'auth-local': { allowSignup: true } },
      problems: [/^plugins\.auth-local: .*"allowSignup".*remove it or check its spelling/],
    },
    {
      desc: 'every bad option of every plugin is listed at once',
      enabled: { 'quota-default': { admin: { cpus: 0 } }, 'test-everything': { greeting: 5 } },
      problems: [/^plugins\.quota-default\.admin\.cpus: /, /^plugins\.test-everything\.greeting: /],
    },
    {
      desc: 'options that are not an object',
      enabled: { 'auth-local': true },
      problems: [/^plugins\.auth-local: .*expected object/],
    },
    {
      desc: 'a dependency that is not enabled, or not known',
      enabled: { 'broken-needs-missing': {} },
      problems: [
        /^plugins\.broken-needs-missing: needs plugin "order-a", which is not enabled; add "order-a" to plugins$/,
        /^plugins\.broken-needs-missing: needs plugin "nowhere", which is not a known plugin$/,
      ],
    },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const err = await refusal({ 'order-fails-close': {}, ...c.enabled });
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.problems.length, c.problems.length, err.message);
      c.problems.forEach((re, i) => assert.match(err.problems[i] ?? '', re));
      assert.deepEqual(journal, [], 'no plugin was initialised');
    });
  }

  it('a key that resolves nowhere lists the built-ins and how keys are resolved', async () => {
    const err = await loadPlugins({ 'auth-local': {}, 'auth-nope': {} }, { pluginsDir: '/nonexistent/hs-plugins' }).then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.problems.length, 1);
    const [problem = ''] = err.problems;
    assert.ok(problem.startsWith(`plugins.auth-nope: unknown plugin; known plugins: ${Object.keys(KNOWN_PLUGINS).join(', ')} (built-in). `), problem);
    assert.match(problem, /npm package name .*pluginsDir \/nonexistent\/hs-plugins.*path starting with \.\/, \.\.\/ or \//);
    assert.match(problem, /looked for the package in .*node_modules\/auth-nope, \/nonexistent\/hs-plugins\/node_modules\/auth-nope, \/nonexistent\/hs-plugins\/auth-nope$/);
  });
});

describe('plugin loader: plugin faults are PluginErrors naming the plugin', () => {
  const cases: { desc: string; enabled: Record<string, unknown>; plugin: string; message: RegExp }[] = [
    { desc: 'wrong shape', enabled: { 'broken-shape': {} }, plugin: 'broken-shape', message: /version must be a non-empty string; configSchema must be a zod schema; init must be a function/ },
    { desc: 'name differs from its key', enabled: { 'broken-name': {} }, plugin: 'broken-name', message: /name must be "broken-name" \(its config key\), got "someone-else"/ },
    { desc: 'module fails to import', enabled: { 'broken-import': {} }, plugin: 'broken-import', message: /plugin "broken-import" could not be loaded/ },
    { desc: 'dependency cycle', enabled: { 'broken-cycle-a': {}, 'broken-cycle-b': {} }, plugin: 'broken-cycle-a', message: /cycle: broken-cycle-a → broken-cycle-b → broken-cycle-a/ },
    { desc: 'init throws', enabled: { 'broken-init-throws': {} }, plugin: 'broken-init-throws', message: /plugin "broken-init-throws" failed to initialise: database on fire/ },
    { desc: 'init times out', enabled: { 'broken-slow-init': {} }, plugin: 'broken-slow-init', message: /failed to initialise: did not finish within 50 ms/ },
    { desc: 'init resolves to a non-handle', enabled: { 'broken-bad-handle': {} }, plugin: 'broken-bad-handle', message: /nothing or to an object with a close\(\) method/ },
    { desc: 'a second quota policy', enabled: { 'quota-default': {}, 'broken-second-policy': {} }, plugin: 'broken-second-policy', message: /but "quota-default" already did; enable only one quota policy/ },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      // Only the timeout case gets a short deadline: on a busy host a real init may take longer than 50 ms.
      const err = await refusal(c.enabled, c.plugin === 'broken-slow-init' ? { initTimeoutMs: 50 } : {});
      assert.ok(err instanceof PluginError, String(err));
      assert.equal(err.plugin, c.plugin);
      assert.match(err.message, c.message);
    });
  }

  it('a failing init closes the plugins already initialised, in reverse', async () => {
    const err = await refusal({ 'order-b': {}, 'order-a': {}, 'broken-init-throws': {} });
    assert.ok(err instanceof PluginError);
    assert.deepEqual(journal, ['init:order-a', 'init:order-b', 'close:order-b', 'close:order-a']);
  });

  it('an init that times out is closed when it finally finishes', async () => {
    await refusal({ 'broken-slow-init': {} }, { initTimeoutMs: 20 });
    for (let i = 0; i < 500 && !journal.includes('close:broken-slow-init'); i++) await sleep(20);
    assert.deepEqual(journal, ['close:broken-slow-init']);
  });
});

describe('plugin lifecycle', () => {
  it('inits in dependency order (config order otherwise) and closes in reverse', async () => {
    const host = await start({ 'order-c': {}, 'order-fails-close': {}, 'order-b': {}, 'order-a': {} });
    assert.deepEqual(host.plugins.map((p) => p.name), ['order-a', 'order-b', 'order-c', 'order-fails-close']);
    assert.deepEqual(journal, ['init:order-a', 'init:order-b', 'init:order-c', 'init:order-fails-close']);
    journal.length = 0;
    await host.close();
    await host.close();
    assert.deepEqual(journal, ['close:order-fails-close', 'close:order-c', 'close:order-b', 'close:order-a']);
  });

  it('a failing close is logged and the others still close', async () => {
    const log = capturingLogger();
    const host = await start({ 'order-a': {}, 'order-fails-close': {}, 'order-b': {} }, {}, log);
    await host.close();
    assert.deepEqual(journal.filter((j) => j.startsWith('close:')), ['close:order-b', 'close:order-fails-close', 'close:order-a']);
    const line = log.lines.find((l) => l.msg === 'plugin close failed');
    assert.equal(line?.plugin, 'order-fails-close');
  });

  it('the registry freezes after init: late registration throws', async () => {
    const host = await start({ 'broken-keeps-registrar': {} });
    const late = () => kept.registrar?.sessionEvents(() => {});
    assert.throws(late, (err: unknown) => err instanceof PluginError && /registered a session listener after its init/.test(err.message));
    assert.throws(() => kept.registrar?.auditSink({ write: async () => {} }), PluginError);
    await host.close();
  });

  it('gives init a narrow, frozen context', async () => {
    let seen: PluginContext<{ level: number }> | undefined;
    const peek = definePlugin({
      name: 'peek',
      version: '1.0.0',
      contract: 2,
      configSchema: z.object({ level: z.number().default(3), nested: z.object({ a: z.number() }).prefault({ a: 1 }) }).strict(),
      exampleConfig: {},
      async init(ctx) {
        seen = ctx;
      },
    });
    const log = capturingLogger();
    const host = await startPlugins({ peek: {} }, { logger: log.logger, services: fakeServices(), catalogue: { peek: async () => peek } });
    assert.ok(seen);
    assert.deepEqual(Object.keys(seen).sort(), ['config', 'logger', 'register', 'services', 'storage']);
    assert.deepEqual(seen.config, { level: 3, nested: { a: 1 } });
    assert.ok(Object.isFrozen(seen) && Object.isFrozen(seen.config) && Object.isFrozen((seen.config as { nested: object }).nested));
    assert.equal(seen.logger.bindings().plugin, 'peek');
    await host.close();
  });
});
