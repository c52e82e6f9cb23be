import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../lib/log.js';
import { RedisRouteTable } from '../../lib/redis-route-table.js';
import { waitFor } from '../helpers/net.js';
import { deleteRedisKeys, TEST_REDIS_URL as REDIS_URL } from '../helpers/redis.js';


describe('RedisRouteTable (real Redis)', () => {
  const prefix = `hstest:${randomBytes(6).toString('hex')}:`;
  let a: RedisRouteTable;
  let b: RedisRouteTable;
  let redis: Redis;

  before(async () => {
    redis = new Redis(REDIS_URL);
    a = await RedisRouteTable.create({ url: REDIS_URL, prefix, logger: silentLogger() });
    b = await RedisRouteTable.create({ url: REDIS_URL, prefix, logger: silentLogger(), resyncMs: 300 });
  });
  after(async () => {
    await a.close();
    await b.close();
    redis.disconnect();
    await deleteRedisKeys(prefix);
  });

  it('shares an added route with the other instance within a second', async () => {
    await a.add('one.sessions.test', { host: '10.1.0.1', port: 14500 });
    assert.deepEqual(a.lookup('one.sessions.test'), { host: '10.1.0.1', port: 14500 }, 'visible locally at once');
    assert.ok(await waitFor(() => b.lookup('one.sessions.test')?.port === 14500, 1000), 'b sees it within 1 s');
  });

  it('stops routing a removed route on the other instance within a second, and tells its listeners', async () => {
    await a.add('two.sessions.test', { host: '10.1.0.2', port: 14500 });
    assert.ok(await waitFor(() => b.lookup('two.sessions.test') !== undefined, 1000));
    const removedOnB: string[] = [];
    const off = b.onRemove((h) => removedOnB.push(h));
    const t0 = Date.now();
    assert.equal(await a.remove('two.sessions.test'), true);
    assert.ok(await waitFor(() => b.lookup('two.sessions.test') === undefined, 1000), 'b drops it within 1 s');
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual(removedOnB, ['two.sessions.test']);
    off();
  });

  it("carries a route's admissions to the other instance and to a new one (issue 12)", async () => {
    const admit = [{ address: '192.0.2.9', until: Date.now() + 60_000 }];
    await a.add('adm.sessions.test', { host: '10.1.0.9', port: 14500, admit: [] });
    assert.ok(await waitFor(() => b.lookup('adm.sessions.test') !== undefined, 1000));
    assert.deepEqual(b.lookup('adm.sessions.test')?.admit, [], 'an empty list (nobody admitted) is not lost as "anyone"');
    await a.add('adm.sessions.test', { host: '10.1.0.9', port: 14500, admit });
    assert.ok(await waitFor(() => b.lookup('adm.sessions.test')?.admit?.length === 1, 1000), 'b sees the admission within 1 s');
    assert.deepEqual(b.lookup('adm.sessions.test')?.admit, admit);
    const c = await RedisRouteTable.create({ url: REDIS_URL, prefix, logger: silentLogger() });
    try {
      assert.deepEqual(c.lookup('adm.sessions.test')?.admit, admit, 'a new instance reads it from the hash');
    } finally {
      await c.close();
    }
  });

  it('a new instance starts with the routes already in Redis', async () => {
    await a.add('three.sessions.test', { host: '10.1.0.3', port: 1 });
    const c = await RedisRouteTable.create({ url: REDIS_URL, prefix, logger: silentLogger() });
    try {
      assert.deepEqual(c.lookup('three.sessions.test'), { host: '10.1.0.3', port: 1 });
    } finally {
      await c.close();
    }
  });

  it('recovers a change whose message was missed, by resyncing from the hash', async () => {
    // Written behind the table's back: no pub/sub message is sent.
    await redis.hset(`${prefix}routes`, 'four.sessions.test', JSON.stringify({ host: '10.1.0.4', port: 2 }));
    assert.ok(await waitFor(() => b.lookup('four.sessions.test')?.port === 2, 2000), 'resync picked it up');
    await redis.hdel(`${prefix}routes`, 'four.sessions.test');
    assert.ok(await waitFor(() => b.lookup('four.sessions.test') === undefined, 2000), 'resync dropped it');
  });

  it('ignores malformed entries and messages instead of crashing', async () => {
    await redis.hset(`${prefix}routes`, 'bad.sessions.test', '{not json');
    await redis.hset(`${prefix}routes`, 'Bad_Name', JSON.stringify({ host: 'x', port: 1 }));
    await redis.publish(`${prefix}routes:changes`, '{"op":"add","hostname":"x.test","upstream":{"host":"x","port":"nope"}}');
    await redis.publish(`${prefix}routes:changes`, 'garbage');
    await a.add('five.sessions.test', { host: '10.1.0.5', port: 3 });
    assert.ok(await waitFor(() => b.lookup('five.sessions.test') !== undefined, 1000), 'still applying good changes');
    assert.equal(b.lookup('bad.sessions.test'), undefined);
    assert.equal(b.lookup('x.test'), undefined);
  });

  it('names the Redis URL (without credentials) when Redis is unreachable', async () => {
    await assert.rejects(
      RedisRouteTable.create({ url: 'redis://user:secret@127.0.0.1:1', logger: silentLogger() }),
      (err: Error) => {
        assert.match(err.message, /cannot use Redis at redis:\/\/user:\*\*\*@127\.0\.0\.1:1/);
        assert.doesNotMatch(err.message, /secret/);
        return true;
      },
    );
  });
});
