import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { build } from 'esbuild';

/*
 * The edge is the internet-facing process and the hot path: what its entry can load must hold
 * none of the web framework, ORM, database driver, plugin host, Docker client, forge or
 * Argon2 (issue 10). Checked on the import graph esbuild resolves from server/edge-main.ts.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FORBIDDEN_PACKAGES = ['koa', '@koa/router', 'typeorm', 'pg', 'dockerode', 'docker-modem', 'node-forge', 'argon2', 'acme-client'];

describe('the edge process imports', () => {
  it('load none of the control plane or the agent, and no heavy package', async () => {
    const result = await build({
      entryPoints: [`${ROOT}server/edge-main.ts`],
      bundle: true,
      platform: 'node',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      external: ['hackstream-peercred'],
    });
    const inputs = Object.keys(result.metafile.inputs);
    const packages = new Set(inputs.map((p) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p)?.[1]).filter((p): p is string => p !== undefined));
    for (const p of FORBIDDEN_PACKAGES) assert.ok(!packages.has(p), `the edge loads ${p}`);
    const own = inputs.filter((p) => !p.includes('node_modules'));
    // Only the config's schema and loader (zod) may come from core/; nothing from agent/.
    const foreign = own.filter((p) => (p.startsWith('core/') && !p.startsWith('core/config/')) || p.startsWith('agent/') || p.startsWith('plugins/'));
    assert.deepEqual(foreign, [], 'files of other processes in the edge');
    assert.ok(own.includes('gateway/gateway.ts') && own.includes('server/edge.ts'), 'the graph was resolved');
  });
});
