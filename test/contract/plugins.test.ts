import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { checkPlugin, type CheckLine } from '../../core/plugin/check.js';
import { KNOWN_PLUGINS } from '../../core/plugin/registry.js';
import { leaked } from '../fixtures/plugins/broken.js';
import { TEST_CATALOGUE } from '../fixtures/plugins/harness.js';
import { TEST_DATABASE_URL } from '../helpers/store.js';

const THIRD_PARTY = fileURLToPath(new URL('../fixtures/plugins/third-party/', import.meta.url));

const failures = (lines: readonly CheckLine[]) => lines.filter((l) => !l.ok).map((l) => `${l.check}: ${l.detail ?? ''}`);

/**
 * Every built-in and the third-party fixture pass the contract suite (core/plugin/check.ts,
 * also `npm run plugin:check`): real loader, real host, real PostgreSQL for their storage.
 */
describe('plugin contract', () => {
  const keys = [...Object.keys(KNOWN_PLUGINS), `${THIRD_PARTY}hs-hello`];
  for (const key of keys) {
    it(`${key} passes every check`, async () => {
      const lines = await checkPlugin(key, { databaseUrl: TEST_DATABASE_URL });
      assert.deepEqual(failures(lines), []);
      assert.ok(lines.length >= 6, `every check ran: ${lines.map((l) => l.check).join(' | ')}`);
    });
  }
});

describe('plugin contract: broken plugins fail the check that concerns them', () => {
  it('a plugin for another contract version fails at loading, and nothing else runs', async () => {
    const lines = await checkPlugin(`${THIRD_PARTY}hs-old`, { databaseUrl: TEST_DATABASE_URL });
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.ok, false);
    assert.match(lines[0]?.detail ?? '', /plugin acme-old \(.*hs-old\) was written for plugin contract 1; this HackStream implements contract 2/);
  });

  it('a plugin whose init throws fails the lifecycle check', async () => {
    const lines = await checkPlugin('broken-init-throws', { databaseUrl: TEST_DATABASE_URL, load: { catalogue: TEST_CATALOGUE } });
    assert.deepEqual(failures(lines), ['its migrations apply, then init and close succeed: plugin "broken-init-throws" failed to initialise: database on fire']);
  });

  it('a plugin that leaves a timer running fails the open-handles check', async () => {
    try {
      const lines = await checkPlugin('broken-leaks-timer', { databaseUrl: TEST_DATABASE_URL, load: { catalogue: TEST_CATALOGUE } });
      // Two timers: the suite starts the plugin twice (a restart must not re-apply migrations).
      assert.deepEqual(failures(lines), ['init then close leaves no open handles: still open: Timeout ×2']);
    } finally {
      for (const t of leaked.timers) clearInterval(t);
    }
  });

  it('a key that resolves nowhere fails at loading', async () => {
    const lines = await checkPlugin('./no/such/plugin', { databaseUrl: TEST_DATABASE_URL });
    assert.equal(lines.length, 1);
    assert.match(lines[0]?.detail ?? '', /no file or folder at \.\/no\/such\/plugin/);
  });
});
