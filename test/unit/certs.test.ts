import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MemoryChallengeStore } from '../../core/certs/acme-challenges.js';
import { randomSerialHex } from '../../core/certs/forge-sign.js';
import { isCertHostname } from '../../core/certs/hostname.js';
import { renewalTime, retryDelay, runAt } from '../../core/certs/schedule.js';

describe('certificate hostnames', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a session hostname', 's1.sessions.example.org', true],
    ['a single label', 'localhost', true],
    ['digits and hyphens inside labels', 'a-1.b2.example', true],
    ['a 63-character label', `${'a'.repeat(63)}.example`, true],
    ['exactly 253 characters', `${'a'.repeat(61)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`, true],
    ['254 characters', `${'a'.repeat(62)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`, false],
    ['a 64-character label', `${'a'.repeat(64)}.example`, false],
    ['uppercase', 'S1.sessions.example.org', false],
    ['a trailing dot', 's1.sessions.example.org.', false],
    ['an empty label', 's1..example.org', false],
    ['a leading hyphen', '-s1.example.org', false],
    ['a trailing hyphen', 's1-.example.org', false],
    ['an underscore', 's_1.example.org', false],
    ['a wildcard', '*.example.org', false],
    ['an IPv4 literal', '10.0.0.1', false],
    ['an IPv6 literal', '::1', false],
    ['whitespace', 's1 .example.org', false],
    ['a NUL byte', 's1\0.example.org', false],
    ['non-ASCII', 'sé.example.org', false],
    ['empty', '', false],
  ];
  for (const [description, name, ok] of cases) {
    it(`${ok ? 'accepts' : 'refuses'} ${description}`, () => assert.equal(isCertHostname(name), ok));
  }
});

describe('renewal time', () => {
  const day = 86_400_000;
  const t0 = new Date('2030-01-01T00:00:00Z');
  const cases: Array<[string, number, number, number]> = [
    ['90-day cert, renew 30 days before', 90 * day, 30 * day, 60 * day],
    ['5-year cert, renew 30 days before', 5 * 365 * day, 30 * day, 5 * 365 * day - 30 * day],
    ['30-second cert: a third of the lifetime wins', 30_000, 30 * day, 20_000],
    ['60-day cert, renew 30 days before: a third wins', 60 * day, 30 * day, 40 * day],
  ];
  for (const [description, lifetime, before, expectedOffset] of cases) {
    it(description, () => {
      const at = renewalTime(t0, new Date(t0.getTime() + lifetime), before);
      assert.equal(at.getTime() - t0.getTime(), expectedOffset);
    });
  }
});

describe('retry delay', () => {
  it('doubles from the minimum up to the maximum (no jitter at random() = 0.5)', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => retryDelay(n, 60_000, 3_600_000, () => 0.5));
    assert.deepEqual(delays, [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000, 3_600_000, 3_600_000]);
  });
  it('jitters within ±20 %', () => {
    assert.equal(retryDelay(1, 1000, 10_000, () => 0), 800);
    assert.equal(retryDelay(1, 1000, 10_000, () => 1), 1200);
  });
});

describe('runAt', () => {
  // runAt's timers are unref'd; this one keeps the test process alive meanwhile.
  let keepAlive: NodeJS.Timeout;
  beforeEach(() => {
    keepAlive = setInterval(() => {}, 1000);
  });
  afterEach(() => clearInterval(keepAlive));
  it('runs a past deadline at once and a future one on time', async () => {
    const fired: string[] = [];
    runAt(new Date(0), () => fired.push('past'));
    const start = Date.now();
    await new Promise<void>((resolve) => runAt(new Date(start + 50), () => resolve()));
    assert.ok(Date.now() - start >= 50);
    assert.deepEqual(fired, ['past']);
  });
  it('can be cancelled', async () => {
    let fired = false;
    const cancel = runAt(new Date(Date.now() + 20), () => (fired = true));
    cancel();
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(fired, false);
  });
  it('handles deadlines beyond the 24.8-day setTimeout limit without firing early', async () => {
    let fired = false;
    const cancel = runAt(new Date(Date.now() + 40 * 86_400_000), () => (fired = true));
    await new Promise((r) => setTimeout(r, 30));
    cancel();
    assert.equal(fired, false);
  });
});

describe('serial numbers', () => {
  it('are positive, minimally encoded 128-bit values, all different', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const hex = randomSerialHex();
      const bytes = Buffer.from(hex, 'hex');
      if (bytes[0] === 0) {
        assert.equal(bytes.length, 17, hex);
        assert.ok((bytes[1] ?? 0) >= 0x80, hex);
      } else {
        assert.equal(bytes.length, 16, hex);
        assert.ok((bytes[0] ?? 0) < 0x80, hex);
      }
      serials.add(hex);
    }
    assert.equal(serials.size, 2000);
  });
});

describe('ACME challenge store', () => {
  it('looks names up case-insensitively and forgets deleted ones', () => {
    const store = new MemoryChallengeStore();
    store.set('API.example.org', { certPem: 'c', keyPem: 'k' });
    assert.deepEqual(store.get('api.example.org'), { certPem: 'c', keyPem: 'k' });
    assert.equal(store.get('other.example.org'), undefined);
    store.delete('api.example.org');
    assert.equal(store.get('API.example.org'), undefined);
  });
});
