import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { authSettings, authSettingsSchema } from '../../core/auth/settings.js';
import { LoginThrottle, sourceKey, type Refusal } from '../../core/auth/throttle.js';
import { Redis } from 'ioredis';
import { KV_KINDS, openTestKv, TEST_REDIS_URL, type TestKv } from '../helpers/store.js';

/*
 * The brute-force limits on the real key-value stores (Redis and in-process), with short
 * windows. The end-to-end figures (A4–A6, through the API) are in api-ratelimit.test.ts and
 * api-lockout.test.ts.
 */

// Delays 300, 600, 1200 ms (capped) after the first free failure; 4 checks per 1.5 s per account.
const limits = authSettings({
  throttle: { accountLongLimit: 4, accountLongWindowMs: 1_500, sourceDelayMs: 300, sourceDelayMaxMs: 1_200, ipFailLimit: 5, ipBanMs: 600 },
}).throttle;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `fn` yields a value (a lock lifting by itself), failing after `ms`. */
async function until<T>(fn: () => Promise<T | null>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`nothing after ${ms} ms`);
    await sleep(25);
  }
}
const allowed = (r: Refusal | null) => (r === null ? true : null);

describe('source keys', () => {
  for (const [desc, ip, key] of [
    ['IPv4 per address', '203.0.113.7', '203.0.113.7'],
    ['IPv4-mapped IPv6 as IPv4', '::ffff:203.0.113.7', '203.0.113.7'],
    ['IPv4-mapped IPv6 in hex as IPv4', '::ffff:cb00:7107', '203.0.113.7'],
    ['IPv6 by its /64', '2001:db8:1:2:aaaa::1', '2001:db8:1:2::/64'],
    ['the same /64, another host', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['IPv6 with a zone', 'fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['IPv6 loopback', '::1', '0:0:0:0::/64'],
  ] as const) {
    it(desc, () => assert.equal(sourceKey(ip), key));
  }
  it('hashes anything else into a safe key', () => {
    assert.match(sourceKey('not an address\n'), /^x[0-9a-f]{32}$/);
  });
});

describe('throttle settings', () => {
  it('defaults: 10 per 15 min per account, 1 free failure then 1 s doubling to 60 s, known for 30 days, A5 5/300 s', () => {
    const t = authSettings().throttle;
    assert.deepEqual(
      [t.accountLongLimit, t.accountLongWindowMs, t.sourceFreeFailures, t.sourceDelayMs, t.sourceDelayMaxMs, t.knownSourceMs, t.ipFailLimit, t.ipBanMs],
      [10, 900_000, 1, 1_000, 60_000, 30 * 86_400_000, 5, 300_000],
    );
  });
  it('takes accountShortLimit as the old name of sourceFreeFailures', () => {
    assert.equal(authSettings({ throttle: { accountShortLimit: 1_000 } }).throttle.sourceFreeFailures, 1_000);
  });
  it('refuses unknown keys and a max delay under the base, by path', () => {
    const r = authSettingsSchema.safeParse({ throttle: { accountShortWindowMs: 1 } });
    assert.equal(r.success, false);
    const d = authSettingsSchema.safeParse({ throttle: { sourceDelayMs: 5_000, sourceDelayMaxMs: 1_000 } });
    assert.deepEqual(d.error?.issues.map((i) => i.path.join('.')), ['throttle.sourceDelayMaxMs']);
  });
});

for (const kind of KV_KINDS) {
  describe(`login throttle (${kind})`, () => {
    let t: TestKv;
    let throttle: LoginThrottle;
    before(async () => {
      t = await openTestKv(kind);
      throttle = new LoginThrottle(t.kv, limits);
    });
    after(async () => {
      await t?.cleanup();
    });

    /** One whole failed check, as login does it. */
    async function fail(user: string, ip: string): Promise<Refusal | null> {
      const r = await throttle.reserveAccount(user, ip);
      if (!r) await throttle.failed(ip, user);
      return r;
    }

    it('per account and source: one free failure, then delays that double up to the cap and lift by themselves', async () => {
      const ip = '10.0.0.1';
      assert.equal(await fail('alice', ip), null, 'first failure: no delay');
      assert.equal(await throttle.reserveAccount('alice', ip), null, 'second check right away');
      // 300, 600, 1200, 1200 ms (capped; uncapped would be 2400).
      const expected = [300, 600, 1_200, 1_200];
      const waits: number[] = [];
      for (const delay of expected) {
        // Timed from before the failure is recorded: the delay runs from then, so it cannot end sooner.
        const t0 = Date.now();
        await throttle.failed(ip, 'alice');
        const r = await throttle.reserveAccount('Alice', ip);
        assert.equal(r?.scope, 'account', 'usernames are case-insensitive');
        assert.equal(r?.started, false, 'a delay is not a lock: not audited');
        assert.equal(r?.retryAfterS, Math.ceil(delay / 1000));
        await until(async () => allowed(await throttle.reserveAccount('alice', ip)), 3_000);
        waits.push(Date.now() - t0);
      }
      // The upper bound is loose for a loaded host.
      assert.ok(
        waits.every((w, i) => w >= (expected[i] as number) - 20),
        `waits ${waits.join(', ')}`,
      );
      assert.ok((waits[3] as number) < 2_200, `capped: waits ${waits.join(', ')}`);
      assert.equal((await throttle.reserveAccount('alice', '10.0.0.2')) === null, true, 'another source is not slowed');
      assert.equal(await throttle.reserveAccount('bob', ip), null, 'another account from the same source is not slowed');
    });

    it('one check at a time per account and source once delays apply', async () => {
      const ip = '10.0.1.1';
      await fail('dora', ip);
      const results = await Promise.all(Array.from({ length: 5 }, () => throttle.reserveAccount('dora', ip)));
      assert.equal(results.filter((r) => r === null).length, 1);
    });

    it('per account: 4 checks in the rolling window across sources, the lock audited once, lifting by itself', async () => {
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await throttle.reserveAccount('erin', `10.0.2.${i}`));
      assert.deepEqual(results.slice(0, 4), [null, null, null, null]);
      assert.equal(results[4]?.scope, 'account');
      assert.equal(results[4]?.started, true, 'the first refusal starts the lock (audited once)');
      assert.equal(results[5]?.started, false, 'later refusals do not');
      assert.ok((results[5]?.retryAfterS ?? 0) >= 1 && (results[5]?.retryAfterS ?? 9) <= 2);
      await until(async () => allowed(await throttle.reserveAccount('erin', '10.0.2.99')), 2_500);
    });

    it('a known source (a success in the last 30 days) passes a full account; its own delays still apply', async () => {
      const home = '10.0.3.1';
      assert.equal(await throttle.reserveAccount('frank', home), null);
      await throttle.succeeded('frank', home);
      for (let i = 0; i < 4; i++) await fail('frank', `10.0.3.${10 + i}`);
      assert.equal((await throttle.reserveAccount('frank', '10.0.3.50'))?.scope, 'account', 'the account is full');
      assert.equal(await throttle.reserveAccount('FRANK', home), null, 'home gets through');
      await throttle.failed(home, 'frank');
      assert.equal(await throttle.reserveAccount('frank', home), null, 'its free failure');
      await throttle.failed(home, 'frank');
      assert.equal((await throttle.reserveAccount('frank', home))?.scope, 'account', 'then its own delay');
      await until(async () => allowed(await throttle.reserveAccount('frank', home)), 3_000);
      await throttle.succeeded('frank', home);
      assert.equal(await throttle.reserveAccount('frank', home), null, 'a success clears its delays');
    });

    it('stores no raw address and no raw username', async () => {
      if (t.kv.kind !== 'redis') return;
      await throttle.succeeded('grace-secret-name', '198.51.100.77');
      await fail('grace-secret-name', '198.51.100.78');
      const redis = new Redis(TEST_REDIS_URL);
      try {
        const keys = await redis.keys(`${t.prefix}*`);
        const values = await Promise.all(keys.map((k) => redis.get(k)));
        assert.ok(keys.length >= 4);
        assert.doesNotMatch(JSON.stringify([keys, values]), /198\.51\.100\.7[78]|grace-secret-name/);
      } finally {
        redis.disconnect();
      }
    });

    it('unlock: the account\'s slots and every source\'s delays start over', async () => {
      for (let i = 0; i < 4; i++) await fail('heidi', '10.0.4.1');
      for (let i = 0; i < 4; i++) await throttle.reserveAccount('heidi', `10.0.4.${10 + i}`);
      assert.equal((await throttle.reserveAccount('heidi', '10.0.4.1'))?.scope, 'account');
      assert.equal((await throttle.reserveAccount('heidi', '10.0.4.99'))?.scope, 'account');
      await throttle.unlock('Heidi');
      assert.equal(await throttle.reserveAccount('heidi', '10.0.4.1'), null);
      assert.equal(await throttle.reserveAccount('heidi', '10.0.4.99'), null);
    });

    it('per source: the 5th failure bans it (any usernames); IPv4-mapped and the same IPv6 /64 are the same source; the ban lifts', async () => {
      for (const [desc, ip, same, other] of [
        ['IPv4', '10.1.2.3', '::ffff:10.1.2.3', '10.1.2.4'],
        ['IPv6', '2001:db8:5::1', '2001:db8:5:0:1234::9', '2001:db8:5:1::1'],
      ] as const) {
        for (let i = 0; i < 4; i++) assert.equal(await throttle.failed(ip, `ban-${desc}-${i}`), false);
        assert.equal(await throttle.checkIp(ip), null);
        assert.equal(await throttle.failed(same, `ban-${desc}-4`), true, `${desc}: the 5th failure starts the ban`);
        const ban = await throttle.checkIp(ip);
        assert.equal(ban?.scope, 'ip');
        assert.equal(ban?.retryAfterS, 1);
        assert.equal((await throttle.checkIp(same))?.scope, 'ip');
        assert.equal(await throttle.checkIp(other), null, `${desc}: another source is not banned`);
      }
      await until(async () => ((await throttle.checkIp('10.1.2.3')) === null ? true : null), 1_500);
    });

    it('keys any username and address safely (control characters, very long)', async () => {
      assert.equal(await throttle.reserveAccount('a\nFAKE\u001b[31m', 'bogus\naddress'), null);
      assert.equal(await throttle.reserveAccount('x'.repeat(5_000), '1'.repeat(5_000)), null);
      assert.equal(await throttle.failed('bogus\naddress', 'a\nFAKE'), false);
    });
  });
}
