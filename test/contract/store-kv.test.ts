import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { AppError } from '../../core/errors.js';
import { LockTimeoutError, openKv, type KeyValueStore } from '../../core/store/kv.js';
import type { RedisKv } from '../../core/store/kv-redis.js';
import { silentLogger } from '../../lib/log.js';
import { KV_KINDS, openTestKv, TEST_REDIS_URL, type TestKv } from '../helpers/store.js';

/** Waits for a condition (events arrive asynchronously); fails after 5 s. */
async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await sleep(5);
  }
}

/* One contract, two stores: every case runs against real Redis (a key prefix of its own) and the in-process store. */

for (const kind of KV_KINDS) {
  describe(`key-value contract (${kind})`, () => {
    let t: TestKv;
    let kv: KeyValueStore;

    before(async () => {
      t = await openTestKv(kind);
      kv = t.kv;
    });
    after(async () => {
      await t?.cleanup();
    });

    it('gets, sets and deletes', async () => {
      assert.equal(kv.kind, kind);
      assert.equal(await kv.get('missing'), null);
      assert.equal(await kv.set('k1', 'v1 ✓ ünïcode'), true);
      assert.equal(await kv.get('k1'), 'v1 ✓ ünïcode');
      assert.equal(await kv.set('k1', 'v2'), true, 'overwrites');
      assert.equal(await kv.get('k1'), 'v2');
      assert.equal(await kv.del('k1'), true);
      assert.equal(await kv.del('k1'), false);
      assert.equal(await kv.get('k1'), null);
    });

    it('writes with ifAbsent only when the key is empty', async () => {
      assert.equal(await kv.set('nx', 'first', { ifAbsent: true }), true);
      assert.equal(await kv.set('nx', 'second', { ifAbsent: true, ttlMs: 1000 }), false);
      assert.equal(await kv.get('nx'), 'first');
    });

    it('expires keys after their TTL', async () => {
      await kv.set('ttl', 'soon gone', { ttlMs: 150 });
      await kv.set('ttl-nx', 'soon gone', { ttlMs: 150, ifAbsent: true });
      assert.equal(await kv.get('ttl'), 'soon gone');
      await sleep(300);
      assert.equal(await kv.get('ttl'), null);
      assert.equal(await kv.getDel('ttl-nx'), null, 'an expired token cannot be redeemed');
      assert.equal(await kv.set('ttl-nx', 'again', { ifAbsent: true }), true, 'an expired key counts as absent');
    });

    it('getDel hands a value to exactly one of 100 concurrent callers', async () => {
      for (let round = 0; round < 3; round++) {
        await kv.set(`token:${round}`, `session-${round}`, { ttlMs: 60_000 });
        const got = await Promise.all(Array.from({ length: 100 }, () => kv.getDel(`token:${round}`)));
        assert.deepEqual(
          got.filter((v) => v !== null),
          [`session-${round}`],
        );
        assert.equal(await kv.get(`token:${round}`), null);
      }
    });

    it('counts atomically under 200 concurrent increments, within a window', async () => {
      const counts = await Promise.all(Array.from({ length: 200 }, () => kv.incr('rate:ip', 400)));
      assert.deepEqual(
        counts.map((c) => c.count).sort((a, b) => a - b),
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      assert.ok(counts.every((c) => c.ttlMs > 0 && c.ttlMs <= 400), 'every answer tells the time left');
      assert.equal(await kv.get('rate:ip'), '200');
      await sleep(500);
      assert.deepEqual((await kv.incr('rate:ip', 400)).count, 1, 'a new window starts from 1');
    });

    it('gives a counter written without a TTL a window, and refuses to count text', async () => {
      await kv.set('plain-counter', '41');
      const c = await kv.incr('plain-counter', 1000);
      assert.equal(c.count, 42);
      assert.ok(c.ttlMs > 0 && c.ttlMs <= 1000);
      await kv.set('text', 'abc');
      await assert.rejects(kv.incr('text', 1000));
    });

    it('locks: one holder at a time, released only by its owner', async () => {
      const a = await kv.acquire('res', 5_000);
      assert.ok(a);
      assert.equal(await kv.acquire('res', 5_000), null, 'taken');
      assert.equal(await kv.get('res'), null, 'locks do not collide with plain keys');
      assert.equal(await a.release(), true);
      assert.equal(await a.release(), false, 'a second release does nothing');
      const b = await kv.acquire('res', 5_000);
      assert.ok(b && b.token !== a.token);
      assert.equal(await b.release(), true);
    });

    it('an expired holder cannot release the next owner’s lock', async () => {
      const old = await kv.acquire('short', 100);
      assert.ok(old);
      await sleep(200);
      const next = await kv.acquire('short', 5_000);
      assert.ok(next, 'the expired lock can be taken');
      assert.equal(await old.release(), false);
      assert.equal(await kv.acquire('short', 5_000), null, 'the new owner still holds it');
      assert.equal(await next.release(), true);
    });

    it('withLock runs 20 concurrent critical sections one at a time', async () => {
      let inside = 0;
      let maxInside = 0;
      let admitted = 0;
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          kv.withLock('quota:user-1', 5_000, async () => {
            inside++;
            maxInside = Math.max(maxInside, inside);
            const seen = admitted;
            await sleep(2);
            // A read-then-write that only stays correct if nobody else is inside.
            if (seen < 2) admitted = seen + 1;
            inside--;
            return i;
          }),
        ),
      );
      assert.equal(maxInside, 1);
      assert.equal(admitted, 2);
      assert.deepEqual(
        [...results].sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i),
      );
      assert.ok(await kv.acquire('quota:user-1', 1000), 'released after the last one');
    });

    it('withLock releases when the section throws, and gives up waiting with a 503', async () => {
      await assert.rejects(
        kv.withLock('throws', 5_000, async () => {
          throw new Error('inside');
        }),
        /inside/,
      );
      const held = await kv.acquire('throws', 5_000);
      assert.ok(held, 'the lock was released');
      const t0 = Date.now();
      const err = await kv.withLock('throws', 5_000, async () => 'never', { waitMs: 200 }).catch((e: unknown) => e);
      assert.ok(err instanceof LockTimeoutError && err instanceof AppError && err.status === 503);
      assert.ok(Date.now() - t0 < 1_000);
      await held.release();
    });

    it('refuses bad keys and TTLs', async () => {
      await assert.rejects(() => kv.get(''));
      await assert.rejects(() => kv.set('a\nb', 'x'));
      await assert.rejects(() => kv.set('k', 'x', { ttlMs: 0 }));
      await assert.rejects(() => kv.incr('k', 1.5));
      await assert.rejects(() => kv.acquire('k', -1));
    });

    it('answers ping', async () => {
      await kv.ping();
    });

    it('publishes to live subscribers of the channel only, until they unsubscribe', async () => {
      const got: string[] = [];
      const other: string[] = [];
      const sub = kv.subscribe('news', { message: (m) => got.push(m) });
      const otherSub = kv.subscribe('other', { message: (m) => other.push(m) });
      await until(() => sub.live && otherSub.live);
      await kv.publish('news', 'first ✓');
      await until(() => got.length === 1);
      assert.deepEqual(got, ['first ✓']);
      await sub.close();
      assert.equal(sub.live, false);
      await kv.publish('news', 'after close');
      await kv.publish('other', 'marker');
      // Messages on one connection arrive in order: once the marker is in, "after close" was dropped.
      await until(() => other.length === 1);
      assert.deepEqual(got, ['first ✓']);
      await otherSub.close();
      await assert.rejects(() => kv.publish('', 'x'));
    });

    if (kind === 'redis') {
      it('reaches another store on the same prefix, not one on another prefix', async () => {
        const same = await openKv({ redisUrl: TEST_REDIS_URL, redisPrefix: t.prefix, logger: silentLogger() });
        const elsewhere = await openTestKv('redis');
        try {
          const seen: string[] = [];
          const foreign: string[] = [];
          const s1 = same.subscribe('cross', { message: (m) => seen.push(m) });
          const s2 = elsewhere.kv.subscribe('cross', { message: (m) => foreign.push(m) });
          await until(() => s1.live && s2.live);
          await kv.publish('cross', 'hello');
          await until(() => seen.length === 1);
          await elsewhere.kv.publish('cross', 'own prefix');
          await until(() => foreign.length === 1);
          assert.deepEqual(seen, ['hello']);
          assert.deepEqual(foreign, ['own prefix'], 'the other prefix got only its own message');
        } finally {
          await same.close();
          await elsewhere.cleanup();
        }
      });

      it('reports a cut subscriber connection as not live, then resubscribes by itself', async () => {
        const states: boolean[] = [];
        const got: string[] = [];
        const sub = kv.subscribe('cut', { message: (m) => got.push(m), live: (l) => states.push(l) });
        await until(() => sub.live);
        const raw = new Redis(TEST_REDIS_URL);
        try {
          const list = await raw.client('LIST');
          const line = String(list).split('\n').find((l) => l.includes(` name=${(kv as RedisKv).subscriberName} `));
          const id = line?.match(/^id=(\d+) /)?.[1];
          assert.ok(id, 'the subscriber connection is listed under its name');
          await raw.client('KILL', 'ID', id);
        } finally {
          raw.disconnect();
        }
        await until(() => states.length >= 3);
        assert.deepEqual(states, [true, false, true], 'live, cut, live again');
        assert.equal(sub.live, true);
        await kv.publish('cut', 'again');
        await until(() => got.includes('again'));
        await sub.close();
      });

      it('keeps its keys under the configured prefix', async () => {
        await kv.set('where', 'here', { ttlMs: 10_000 });
        const raw = new Redis(TEST_REDIS_URL);
        try {
          assert.equal(await raw.get(`${t.prefix}kv:where`), 'here');
          assert.ok((await raw.pttl(`${t.prefix}kv:where`)) > 0);
        } finally {
          raw.disconnect();
        }
      });
    }
  });
}
