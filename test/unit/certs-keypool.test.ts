import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyPool, type GeneratedKey } from '../../core/certs/keys.js';

/** A generator that counts calls and lets the test decide when each key is ready. */
function controlledGenerator() {
  let n = 0;
  const pending: Array<(k: GeneratedKey) => void> = [];
  const generate = () =>
    new Promise<GeneratedKey>((resolve) => {
      const id = n++;
      pending.push(() => resolve({ publicKeyPem: `pub-${id}`, privateKeyPem: `priv-${id}` }));
    });
  const release = async () => {
    for (const r of pending.splice(0)) r({ publicKeyPem: '', privateKeyPem: '' });
    await new Promise((r) => setImmediate(r));
  };
  return { generate, release, calls: () => n };
}

describe('KeyPool', () => {
  it('does nothing until first used, then keeps `size` keys ready and hands each out once', async () => {
    const g = controlledGenerator();
    const pool = new KeyPool(3, g.generate);
    assert.equal(g.calls(), 0, 'no work before the first take');
    const first = pool.take();
    await g.release();
    const k1 = await first;
    assert.equal(g.calls(), 4, 'one for the caller, three to fill the pool');
    assert.equal(pool.available, 3);
    const seen = new Set([k1.privateKeyPem]);
    for (let i = 0; i < 3; i++) {
      const k = await pool.take();
      assert.ok(!seen.has(k.privateKeyPem), 'a key is never handed out twice');
      seen.add(k.privateKeyPem);
    }
    assert.equal(g.calls(), 7, 'each take from the pool starts one replacement');
    pool.close();
    await g.release();
    assert.equal(pool.available, 0, 'a closed pool keeps nothing');
  });

  it('still issues when background generation fails', async () => {
    let calls = 0;
    const pool = new KeyPool(2, async () => {
      calls++;
      if (calls > 1) throw new Error('keygen failed');
      return { publicKeyPem: 'p', privateKeyPem: 'k' };
    });
    assert.equal((await pool.take()).privateKeyPem, 'k');
    await new Promise((r) => setImmediate(r));
    await assert.rejects(pool.take(), /keygen failed/, 'the caller sees its own failure, not a hang');
    pool.close();
  });
});
