import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dictionary } from '@zxcvbn-ts/language-common';
import { PASSWORD_MAX, passwordProblem } from '../../core/auth/password-policy.js';
import { PasswordHasher } from '../../core/auth/passwords.js';
import { Semaphore } from '../../core/auth/semaphore.js';
import { authSettings } from '../../core/auth/settings.js';
import { ACCESS_PREFIX, isTokenShaped, newToken, REFRESH_PREFIX, sha256Hex } from '../../core/auth/tokens.js';
import { AppError } from '../../core/errors.js';

const PRODUCTION = authSettings().argon2;
const FAST = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

/** `$argon2id$v=19$m=…,t=…,p=…$salt$hash` (parameters in any order) → its parts (reliability A1). */
function parsePhc(phc: string): { id: string; m: number; t: number; p: number; saltBytes: number; hashBytes: number } {
  const m = /^\$(argon2id)\$v=19\$([a-z]=\d+(?:,[a-z]=\d+)*)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(phc);
  assert.ok(m, `not a PHC string: ${phc}`);
  const params = new Map((m[2] as string).split(',').map((kv) => [kv[0] as string, Number(kv.slice(2))]));
  const b64 = (s: string) => Buffer.from(s, 'base64').length;
  return { id: m[1] as string, m: params.get('m') ?? 0, t: params.get('t') ?? 0, p: params.get('p') ?? 0, saltBytes: b64(m[3] as string), hashBytes: b64(m[4] as string) };
}

describe('password policy (reliability A8)', () => {
  const cases: { desc: string; password: string; username?: string; ok: boolean }[] = [
    { desc: '7 characters', password: 'xK9#mQ2', ok: false },
    { desc: '8 characters', password: 'xK9#mQ2v', ok: true },
    { desc: '64 characters', password: 'q'.repeat(32) + 'Z'.repeat(32), ok: true },
    { desc: '128 characters', password: 'long passphrase '.repeat(8), ok: true },
    { desc: `${PASSWORD_MAX} characters`, password: 'ab'.repeat(PASSWORD_MAX / 2), ok: true },
    { desc: `${PASSWORD_MAX + 1} characters`, password: 'a'.repeat(PASSWORD_MAX + 1), ok: false },
    { desc: 'a passphrase with spaces and Unicode', password: 'grüne Äpfel im Schnee ☃', ok: true },
    { desc: 'length counts code points, not UTF-16 units (4 emoji = 8 units)', password: '😀😀😀😀', ok: false },
    { desc: 'a common password', password: 'password123', ok: false },
    { desc: 'a common password in another case', password: 'PassWord123', ok: false },
    { desc: 'the username itself', password: 'alice-in-chains', username: 'Alice-In-Chains', ok: false },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const problem = passwordProblem(c.password, c.username);
      assert.equal(problem === null, c.ok, problem ?? 'accepted');
    });
  }

  it('refuses each of the 3000 most common passwords', () => {
    const top = dictionary['passwords-common'].slice(0, 3000);
    const accepted = top.filter((p) => passwordProblem(p) === null);
    assert.deepEqual(accepted, []);
  });
});

describe('Argon2id hashing', () => {
  it('production defaults are at least OWASP\'s minimum (m=19456, t=3 > 2, p=1), and a hash says so (A1)', async () => {
    assert.deepEqual(PRODUCTION, { memoryCost: 19_456, timeCost: 3, parallelism: 1 });
    const hasher = new PasswordHasher(PRODUCTION, { concurrency: 2, queueMax: 8 });
    const phc = parsePhc(await hasher.hash('correct horse battery staple'));
    assert.equal(phc.id, 'argon2id');
    assert.ok((phc.m >= 19_456 && phc.t >= 2) || (phc.m >= 47_104 && phc.t === 1), `m=${phc.m} t=${phc.t}`);
    assert.equal(phc.p, 1);
    assert.ok(phc.saltBytes >= 16, `salt ${phc.saltBytes} B`);
  });

  it('verifies long passwords without truncation and passphrases unchanged', async () => {
    const hasher = new PasswordHasher(FAST, { concurrency: 2, queueMax: 8 });
    const long = 'x'.repeat(127) + 'A';
    const phc = await hasher.hash(long);
    assert.equal((await hasher.verify(phc, long)).ok, true);
    assert.equal((await hasher.verify(phc, 'x'.repeat(127) + 'B')).ok, false, 'the 128th character counts');
    const unicode = 'grüne Äpfel im Schnee ☃';
    const u = await hasher.hash(unicode);
    assert.equal((await hasher.verify(u, unicode)).ok, true);
    assert.equal((await hasher.verify(u, unicode.normalize('NFD'))).ok, false, 'no silent normalisation');
  });

  it('flags hashes made with older parameters for an upgrade, and only after a match', async () => {
    const old = new PasswordHasher(FAST, { concurrency: 1, queueMax: 8 });
    const current = new PasswordHasher(PRODUCTION, { concurrency: 1, queueMax: 8 });
    const phc = await old.hash('an older hash here');
    assert.deepEqual(await current.verify(phc, 'an older hash here'), { ok: true, rehash: true });
    assert.deepEqual(await current.verify(phc, 'wrong password'), { ok: false, rehash: false });
    const fresh = await current.hash('an older hash here');
    assert.deepEqual(await current.verify(fresh, 'an older hash here'), { ok: true, rehash: false });
    assert.equal(current.outdated('$2b$10$abcdefghijklmnopqrstuv'), true, 'bcrypt or anything not argon2id');
    assert.deepEqual(await current.verify('not a hash', 'x'), { ok: false, rehash: false });
  });

  it('hashes with the production cost, at least the OWASP Argon2id minimum (A2; the verify time is printed, not asserted)', async () => {
    const hasher = new PasswordHasher(PRODUCTION, { concurrency: 1, queueMax: 8 });
    const phc = await hasher.hash('timing the production cost');
    const times: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t = process.hrtime.bigint();
      await hasher.verify(phc, 'wrong guess');
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    times.sort((a, b) => a - b);
    const median = times[7] as number;
    process.stdout.write(`# argon2id m=${PRODUCTION.memoryCost} t=${PRODUCTION.timeCost} p=${PRODUCTION.parallelism} verify median ${median.toFixed(1)} ms\n`);
    // The cost is in the parameters, which the stored hash carries; the time depends on the host's load.
    assert.match(phc, new RegExp(`^\\$argon2id\\$v=19\\$m=${PRODUCTION.memoryCost},p=${PRODUCTION.parallelism},t=${PRODUCTION.timeCost}\\$`));
    // OWASP Password Storage Cheat Sheet: m ≥ 19 MiB with t ≥ 2 (or more memory with t = 1).
    assert.ok(PRODUCTION.memoryCost >= 19 * 1024 && PRODUCTION.timeCost >= 2, 'below the OWASP minimum');
  });

  it('counts evaluations, dummy verifies included, and runs at most `concurrency` at once', async () => {
    const hasher = new PasswordHasher(FAST, { concurrency: 2, queueMax: 100 });
    await hasher.warmUp();
    const before = hasher.evaluations;
    await Promise.all(Array.from({ length: 10 }, () => hasher.dummyVerify('whatever')));
    assert.equal(hasher.evaluations - before, 10);
  });
});

describe('Semaphore', () => {
  it('admits `limit` at once, queues up to `queueMax`, refuses the rest with 503', async () => {
    const s = new Semaphore(2, 3);
    let running = 0;
    let peak = 0;
    const release: Array<() => void> = [];
    const job = () =>
      s.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => release.push(r));
        running--;
      });
    const jobs = Array.from({ length: 5 }, job);
    const refused = await job().catch((e: unknown) => e);
    assert.ok(refused instanceof AppError && refused.code === 'SERVICE_UNAVAILABLE' && refused.headers['Retry-After'] === '1');
    assert.equal(s.inUse, 2);
    assert.equal(s.queued, 3);
    while (release.length > 0 || running > 0) {
      release.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(jobs);
    assert.equal(peak, 2);
    assert.equal(s.inUse, 0);
  });
});

describe('tokens (reliability T1)', () => {
  it('200,000 tokens of each kind: 256 bits each, no duplicates, shaped and prefixed', () => {
    for (const prefix of [ACCESS_PREFIX, REFRESH_PREFIX]) {
      const seen = new Set<string>();
      for (let i = 0; i < 200_000; i++) seen.add(newToken(prefix));
      assert.equal(seen.size, 200_000);
      const one = [...seen][0] as string;
      assert.equal(Buffer.from(one.slice(prefix.length), 'base64url').length, 32);
      assert.ok(isTokenShaped(one, prefix));
      assert.ok(!isTokenShaped(one, prefix === ACCESS_PREFIX ? REFRESH_PREFIX : ACCESS_PREFIX));
    }
    assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('refuses anything not shaped like a token before a lookup', () => {
    const bad = ['', 'hsa_', 'hsa_short', `hsa_${'A'.repeat(42)}*`, `hsa_${'A'.repeat(44)}`, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.', `HSA_${'A'.repeat(43)}`];
    for (const t of bad) assert.equal(isTokenShaped(t, ACCESS_PREFIX), false, t);
  });
});
