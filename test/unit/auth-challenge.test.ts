import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SecondFactorChallenges, type PendingLogin } from '../../core/auth/second-factor.js';
import { KV_KINDS, openTestKv, type TestKv } from '../helpers/store.js';

/*
 * Second-factor challenges on both real KV stores: random ids, only a hash stored, a bounded
 * number of tries (also under concurrency), single use, expiry.
 */

const PENDING: PendingLogin = { userId: '00000000-0000-4000-8000-000000000001', username: 'alice', provider: 'auth-local', flow: null, factors: ['totp'], tokenEpoch: 3 };

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const kind of KV_KINDS) {
  describe(`second-factor challenges (${kind})`, () => {
    let t: TestKv;
    let challenges: SecondFactorChallenges;
    before(async () => {
      t = await openTestKv(kind);
      challenges = new SecondFactorChallenges(t.kv, { ttlMs: 60_000, tries: 5 });
    });
    after(async () => {
      await t?.cleanup();
    });

    it('issues a 256-bit base64url id and keeps the login under its hash only', async () => {
      const a = await challenges.issue(PENDING);
      const b = await challenges.issue(PENDING);
      assert.match(a.challengeId, /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual(a.challengeId, b.challengeId);
      assert.equal(a.expiresInS, 60);
      assert.deepEqual(await challenges.find(a.challengeId), PENDING);
      assert.equal(await t.kv.get(`login:2fa:c:${a.challengeId}`), null, 'the raw id is no key');
    });

    for (const [desc, id] of [
      ['an unknown id', 'A'.repeat(43)],
      ['a malformed id', 'not a challenge'],
      ['an empty id', ''],
    ] as const) {
      it(`finds nothing for ${desc}`, async () => {
        assert.equal(await challenges.find(id), null);
      });
    }

    it('allows exactly 5 tries, also when they come at once', async () => {
      const { challengeId } = await challenges.issue(PENDING);
      const left = await Promise.all(Array.from({ length: 8 }, () => challenges.spend(challengeId)));
      assert.deepEqual(
        left.filter((n) => n !== null).sort(),
        [0, 1, 2, 3, 4],
      );
      assert.equal(left.filter((n) => n === null).length, 3);
      assert.equal(await challenges.find(challengeId), null, 'out of tries: gone');
    });

    it('is used once: of two concurrent takers, one gets it', async () => {
      const { challengeId } = await challenges.issue(PENDING);
      const took = await Promise.all([challenges.consume(challengeId), challenges.consume(challengeId)]);
      assert.deepEqual(took.sort(), [false, true]);
      assert.equal(await challenges.find(challengeId), null);
    });

    it('expires', async () => {
      const short = new SecondFactorChallenges(t.kv, { ttlMs: 150, tries: 5 });
      const { challengeId } = await short.issue(PENDING);
      assert.ok(await short.find(challengeId));
      await until(async () => (await short.find(challengeId)) === null, 5_000);
    });

    it('drops a challenge on demand', async () => {
      const { challengeId } = await challenges.issue(PENDING);
      await challenges.drop(challengeId);
      assert.equal(await challenges.find(challengeId), null);
    });
  });
}
