import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { sourceKey } from '../../core/auth/throttle.js';
import { limitKey } from '../../lib/limits.js';
import { formatIpv6 } from '../../lib/proxy-protocol.js';

/*
 * limitKey (lib/limits.ts): what per-IP caps, login throttling and bans count a client by.
 * IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64, whatever way the address is written.
 */

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)).filter((b) => !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff));
/** The same address in its longest form: eight zero-padded upper-case groups. */
const longForm = (b: Buffer) =>
  Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16).toUpperCase().padStart(4, '0')).join(':');

describe('limitKey', () => {
  for (const [desc, ip, key] of [
    ['IPv4 per address', '203.0.113.7', '203.0.113.7'],
    ['IPv4-mapped IPv6 as IPv4', '::ffff:203.0.113.7', '203.0.113.7'],
    ['IPv4-mapped IPv6 in hex as IPv4', '::FFFF:cb00:7107', '203.0.113.7'],
    ['IPv6 by its /64', '2001:db8:1:2:aaaa::1', '2001:db8:1:2::/64'],
    ['the same /64, another host', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['the next /64 is another key', '2001:db8:1:3::1', '2001:db8:1:3::/64'],
    ['IPv6 with a zone', 'fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['IPv6 loopback', '::1', '0:0:0:0::/64'],
  ] as const) {
    it(desc, () => assert.equal(limitKey(ip), key));
  }

  it('is null for what is not an IP address', () => {
    for (const s of ['', 'unknown', '1.2.3', '1.2.3.4.5', '::g', 'example.org', '1.2.3.4/32']) assert.equal(limitKey(s), null, s);
  });

  it('property: IPv4 keys by itself, written plain or IPv4-mapped (dotted or hex)', () => {
    fc.assert(
      fc.property(ipv4, (a) => {
        const [w = 0, x = 0, y = 0, z = 0] = a.split('.').map(Number);
        const hex = `::ffff:${((w << 8) | x).toString(16)}:${((y << 8) | z).toString(16)}`;
        assert.equal(limitKey(a), a);
        assert.equal(limitKey(`::ffff:${a}`), a);
        assert.equal(limitKey(hex), a);
      }),
      { numRuns: 5_000 },
    );
  });

  it('property: two IPv6 addresses share a key exactly when their first 64 bits are equal, however written', () => {
    fc.assert(
      fc.property(v6, v6, fc.boolean(), (a, b, samePrefix) => {
        const other = Buffer.from(b);
        if (samePrefix) a.copy(other, 0, 0, 8);
        if (other.subarray(0, 10).every((x) => x === 0) && other[10] === 0xff && other[11] === 0xff) return;
        const ka = limitKey(formatIpv6(a));
        assert.ok(ka?.endsWith('::/64'), ka ?? 'null');
        assert.equal(limitKey(longForm(a)), ka, 'the long, upper-case form keys the same');
        assert.equal(limitKey(formatIpv6(other)) === ka, a.subarray(0, 8).equals(other.subarray(0, 8)));
      }),
      { numRuns: 10_000 },
    );
  });

  it('property: the login throttle keys by it (sourceKey = limitKey for every address)', () => {
    fc.assert(
      fc.property(fc.oneof(ipv4, v6.map(formatIpv6)), (a) => {
        assert.equal(sourceKey(a), limitKey(a));
      }),
      { numRuns: 2_000 },
    );
  });
});
