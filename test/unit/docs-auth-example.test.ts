import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadPlugins } from '../../core/plugin/loader.js';

/*
 * docs/auth.md's configuration example stays true: every plugin it lists loads and its
 * options validate (nothing is initialised, so the files it names need not exist here).
 */
describe('docs/auth.md', () => {
  it('shows a plugins section every listed plugin accepts', async () => {
    const text = readFileSync(new URL('../../docs/auth.md', import.meta.url), 'utf8');
    const block = /```json\n([\s\S]*?)\n```/.exec(text)?.[1];
    assert.ok(block, 'a JSON example');
    const { plugins } = JSON.parse(block) as { plugins: Record<string, unknown> };
    const loaded = await loadPlugins(plugins);
    assert.deepEqual(loaded.map((l) => l.plugin.name).sort(), Object.keys(plugins).sort());
  });
});
