import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { authSettings } from '../../core/auth/settings.js';
import { LoginThrottle } from '../../core/auth/throttle.js';
import { KV_KINDS, openTestKv, type TestKv } from '../helpers/store.js';

/*
 * The brute-force limits on the real key-value stores (Redis and in-process), with short
 * windows. The end-to-end figures (A4–A6, through the API) are in api-ratelimit.test.ts.
 */

const limits = authSettings({
  throttle: { accountShortLimit: 3, accountShortWindowMs: 400, accountLongLimit: 5, accountLongWindowMs: 1_500, ipFailLimit: 5, ipBanMs: 600 },
}).throttle;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

    it('per account: 3 checks, then a short backoff; after it 2 more, then the long window; usernames are case-insensitive', async () => {
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await throttle.reserveAccount(i % 2 ? 'Alice' : 'alice'));
      assert.deepEqual(results.slice(0, 3), [null, null, null]);
      assert.equal(results[3]?.scope, 'account');
      assert.equal(results[3]?.started, true, 'the first refusal starts the lock (audited once)');
      assert.ok((results[3]?.retryAfterS ?? 0) >= 1);
      assert.equal((await throttle.reserveAccount('alice'))?.started, false, 'later refusals do not');
      await sleep(450);
      assert.equal(await throttle.reserveAccount('alice'), null, '4th check after the short window');
      assert.equal(await throttle.reserveAccount('alice'), null, '5th');
      const refused = await throttle.reserveAccount('alice');
      assert.equal(refused?.scope, 'account', 'the long window is used up');
      assert.ok((refused?.retryAfterS ?? 0) >= 1 && (refused?.retryAfterS ?? 99) <= 2);
      assert.equal(await throttle.reserveAccount('bob'), null, 'other accounts are untouched');
      await sleep(1_600);
      assert.equal(await throttle.reserveAccount('alice'), null, 'no permanent lock');
    });

    it('a success clears the account counters', async () => {
      for (let i = 0; i < 3; i++) assert.equal(await throttle.reserveAccount('carol'), null);
      await throttle.succeeded('CAROL');
      assert.equal(await throttle.reserveAccount('carol'), null);
    });

    it('per IP: the 5th failure bans the IP (any usernames), the ban lifts by itself', async () => {
      const ip = '10.1.2.3';
      for (let i = 0; i < 4; i++) assert.equal(await throttle.failed(ip), false);
      assert.equal(await throttle.checkIp(ip), null);
      assert.equal(await throttle.failed(ip), true, 'the 5th failure starts the ban');
      const ban = await throttle.checkIp(ip);
      assert.equal(ban?.scope, 'ip');
      assert.equal(ban?.retryAfterS, 1);
      assert.equal(await throttle.checkIp('::ffff:10.1.2.3').then((r) => r?.scope), 'ip', 'IPv4-mapped IPv6 is the same client');
      assert.equal(await throttle.checkIp('10.1.2.4'), null);
      await sleep(650);
      assert.equal(await throttle.checkIp(ip), null);
    });

    it('keys any username safely (control characters, very long)', async () => {
      assert.equal(await throttle.reserveAccount('a\nFAKE\u001b[31m'), null);
      assert.equal(await throttle.reserveAccount('x'.repeat(5_000)), null);
    });
  });
}
