import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ERRORS } from '../../core/errors.js';
import { createForwarder } from '../../gateway/forward.js';
import { SHARED_ERRORS } from '../../lib/error-codes.js';
import { silentLogger } from '../../lib/log.js';

/*
 * The edge answers some errors itself (it imports nothing from core/): their codes live in
 * lib/error-codes.ts, and core's catalogue must give each the same status. The edge's real
 * answer when control is away is checked against core's catalogue, not against a constant.
 */

describe('error codes shared by the edge and core', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hs-edge-503-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('core’s catalogue has every shared code with the same status', () => {
    for (const [code, status] of Object.entries(SHARED_ERRORS)) {
      assert.equal((ERRORS as Record<string, number>)[code], status, code);
    }
  });

  it('the edge’s answer when control does not answer is a code of core’s catalogue, with its status', async () => {
    // No control behind this socket path: the forwarder answers for it.
    const forwarder = createForwarder({ socketPath: join(dir, 'api.sock'), logger: silentLogger() });
    const server = createServer(forwarder.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/me`);
      const body = (await res.json()) as { error?: { code?: string } };
      const code = body.error?.code ?? '';
      assert.ok(code in ERRORS, `${code} is in core's catalogue`);
      assert.equal(res.status, (ERRORS as Record<string, number>)[code]);
      assert.equal(res.status, 503);
    } finally {
      forwarder.close();
      server.close();
    }
  });
});
