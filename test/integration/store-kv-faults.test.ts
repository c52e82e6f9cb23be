import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../core/errors.js';
import { silentLogger } from '../../lib/log.js';
import { openKv } from '../../core/store/kv.js';
import { openTestKv, startFaultProxy, TEST_REDIS_URL, type FaultProxy, type TestKv } from '../helpers/store.js';

/*
 * Reliability D6/D7 at the store's level: a hung Redis fails commands within the command
 * timeout, a dead one fails them at once, and both recover by themselves. The fault proxy
 * stands in for SIGSTOP/SIGKILL so the Redis other tests share is left alone.
 */

const COMMAND_TIMEOUT_MS = 300;

async function settle<T>(p: Promise<T>): Promise<{ value?: T; err?: unknown }> {
  try {
    return { value: await p };
  } catch (err) {
    return { err };
  }
}

function isUnavailable(err: unknown): boolean {
  return err instanceof AppError && err.code === 'SERVICE_UNAVAILABLE' && err.status === 503;
}

async function eventually(fn: () => Promise<unknown>, withinMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      await fn();
      return Date.now() - t0;
    } catch (err) {
      if (Date.now() - t0 > withinMs) throw err;
      await sleep(50);
    }
  }
}

describe('key-value store on a failing Redis', () => {
  let proxy: FaultProxy;
  let t: TestKv;

  before(async () => {
    proxy = await startFaultProxy(Number(new URL(TEST_REDIS_URL).port || 6379), new URL(TEST_REDIS_URL).hostname);
    t = await openTestKv('redis', { redisUrl: `redis://127.0.0.1:${proxy.port}`, commandTimeoutMs: COMMAND_TIMEOUT_MS });
  });
  after(async () => {
    proxy.setMode('pass');
    await t?.cleanup();
    await proxy?.close();
  });

  it('fails every command of a hung Redis within the command timeout, then recovers', async () => {
    await t.kv.set('before-hang', '1');
    proxy.setMode('hang');
    const t0 = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => settle(i % 2 ? t.kv.get('before-hang') : t.kv.getDel(`token:${i}`))));
    assert.ok(outcomes.every((o) => isUnavailable(o.err)), 'all fail closed with 503');
    assert.ok(Date.now() - t0 < COMMAND_TIMEOUT_MS + 700, `no pile-up: all answered in ${Date.now() - t0} ms`);
    await assert.rejects(t.kv.ping(), isUnavailable);

    proxy.setMode('pass');
    const ms = await eventually(async () => assert.equal(await t.kv.get('before-hang'), '1'), 5_000);
    assert.ok(ms < 5_000);
    // The late replies to the timed-out commands must not be handed to later ones.
    await t.kv.set('after-hang', 'fresh');
    assert.equal(await t.kv.get('after-hang'), 'fresh');
    assert.equal(await t.kv.get('before-hang'), '1');
  });

  it('fails at once while Redis is down, then reconnects within 5 s', async () => {
    proxy.setMode('refuse');
    await sleep(50);
    const t0 = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => settle(t.kv.incr('rate', 60_000))));
    assert.ok(outcomes.every((o) => isUnavailable(o.err)), 'all fail closed with 503');
    assert.ok(Date.now() - t0 < 500, `failed fast (${Date.now() - t0} ms)`);
    await sleep(300);

    proxy.setMode('pass');
    const ms = await eventually(() => t.kv.ping(), 5_000);
    assert.ok(ms < 5_000, `recovered in ${ms} ms`);
    assert.equal((await t.kv.incr('rate', 60_000)).count, 1, 'no increment counted while down');
  });

  it('refuses to open on a Redis that does not answer, naming it', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const t0 = Date.now();
    await assert.rejects(
      openKv({ redisUrl: `redis://:secret@127.0.0.1:${closedPort}`, redisPrefix: 'hstest:', logger: silentLogger() }),
      (err: Error) => err.message.includes(`127.0.0.1:${closedPort}`) && !err.message.includes('secret'),
    );
    assert.ok(Date.now() - t0 < 6_000);
  });
});
