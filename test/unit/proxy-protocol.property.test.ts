import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  buildProxyV2,
  formatIpv6,
  ipv6Bytes,
  looksLikeProxyHeader,
  parseProxyHeader,
  V1_MAX_LENGTH,
  V2_MAX_PAYLOAD,
  V2_SIGNATURE,
  type ProxyHeaderResult,
} from '../../lib/proxy-protocol.js';

/*
 * The PROXY header parser (lib/proxy-protocol.ts) on well-formed, truncated, mutated and random
 * input: it never throws, says "incomplete" for every strict prefix of a header, finds the exact
 * end of a header whatever follows, and names the client as the header does.
 */

const KINDS = new Set(['ok', 'incomplete', 'missing', 'invalid']);

function parse(buf: Buffer): ProxyHeaderResult {
  const r = parseProxyHeader(buf);
  assert.ok(KINDS.has(r.kind), r.kind);
  if (r.kind === 'ok') assert.ok(r.length > 0 && r.length <= buf.length);
  return r;
}

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const v6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
/** 16 bytes that are not an IPv4-mapped address (those are given as IPv4). */
const v6NotMapped = v6Bytes.filter((b) => !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff));
/** IPv6 with long zero runs, where `::` placement matters. */
const v6Sparse = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.nat(0xffff)), { minLength: 8, maxLength: 8 }).map((g) => {
  const b = Buffer.alloc(16);
  g.forEach((x, i) => b.writeUInt16BE(x, i * 2));
  return b;
});
const port = fc.nat(65535);
const tlv = fc.tuple(fc.nat(255), fc.uint8Array({ maxLength: 40 })).map(([type, value]) => {
  const b = Buffer.alloc(3 + value.length);
  b[0] = type;
  b.writeUInt16BE(value.length, 1);
  Buffer.from(value).copy(b, 3);
  return b;
});
const tlvs = fc.array(tlv, { maxLength: 4 }).map((a) => Buffer.concat(a));
const tail = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));

describe('PROXY header parser: properties', () => {
  it('never throws on arbitrary bytes, or on bytes after either signature', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
          fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.concat([V2_SIGNATURE, Buffer.from(a)])),
          fc.string({ maxLength: 130 }).map((s) => Buffer.from(`PROXY ${s}`, 'latin1')),
        ),
        (buf) => {
          parse(buf);
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('a v2 header (IPv4 or IPv6, any TLVs) ends exactly where it says, names its source, and every strict prefix is incomplete', () => {
    fc.assert(
      fc.property(fc.oneof(ipv4, v6NotMapped.map(formatIpv6)), port, fc.oneof(ipv4, v6NotMapped.map(formatIpv6)), port, tlvs, tail, (src, sport, dst, dport, extra, rest) => {
        const header = buildProxyV2({ address: src, port: sport }, { address: dst, port: dport }, extra);
        const r = parse(Buffer.concat([header, rest]));
        assert.equal(r.kind, 'ok');
        if (r.kind !== 'ok') return;
        assert.equal(r.version, 2);
        assert.equal(r.length, header.length);
        // Mixed families travel as IPv6; an IPv4 source then comes back as IPv4 (mapped → plain).
        assert.deepEqual(r.source, { address: src, port: sport });
        for (let n = 0; n < header.length; n++) assert.equal(parse(header.subarray(0, n)).kind, 'incomplete', `prefix of ${n} bytes`);
      }),
      { numRuns: 3_000 },
    );
  });

  it('a mutated v2 header never throws; one byte changed in the fixed part is refused or read the same', () => {
    fc.assert(
      fc.property(ipv4, port, tlvs, fc.nat(), fc.nat(255), (src, sport, extra, at, value) => {
        const header = buildProxyV2({ address: src, port: sport }, { address: '192.0.2.1', port: 443 }, extra);
        const mutated = Buffer.from(header);
        const i = at % mutated.length;
        mutated[i] = value;
        const r = parse(mutated);
        if (i < 12 && value !== header[i]) assert.equal(r.kind, 'missing');
      }),
      { numRuns: 10_000 },
    );
  });

  it('a v1 line (TCP4, TCP6, UNKNOWN) is read up to its CRLF, and every strict prefix is incomplete', () => {
    const line = fc.oneof(
      fc.tuple(ipv4, ipv4, port, port).map(([s, d, sp, dp]) => ({ text: `PROXY TCP4 ${s} ${d} ${sp} ${dp}\r\n`, source: { address: s, port: sp } })),
      fc.tuple(v6NotMapped.map(formatIpv6), v6NotMapped.map(formatIpv6), port, port).map(([s, d, sp, dp]) => ({ text: `PROXY TCP6 ${s} ${d} ${sp} ${dp}\r\n`, source: { address: s, port: sp } })),
      fc.constant({ text: 'PROXY UNKNOWN\r\n', source: null }),
    );
    fc.assert(
      fc.property(line, tail, ({ text, source }, rest) => {
        const header = Buffer.from(text, 'latin1');
        assert.ok(header.length <= V1_MAX_LENGTH);
        const r = parse(Buffer.concat([header, rest]));
        assert.equal(r.kind, 'ok');
        if (r.kind !== 'ok') return;
        assert.equal(r.version, 1);
        assert.equal(r.length, header.length);
        assert.deepEqual(r.source, source);
        for (let n = 0; n < header.length; n++) assert.equal(parse(header.subarray(0, n)).kind, 'incomplete', `prefix of ${n} bytes`);
      }),
      { numRuns: 3_000 },
    );
  });

  it('IPv6 text is RFC 5952 (as WHATWG URL writes it) and reads back to the same 16 bytes', () => {
    fc.assert(
      fc.property(fc.oneof(v6NotMapped, v6Sparse), (bytes) => {
        const text = formatIpv6(bytes);
        if (bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return;
        assert.equal(isIP(text), 6, text);
        assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1));
        assert.deepEqual(ipv6Bytes(text), bytes);
      }),
      { numRuns: 10_000 },
    );
  });
});

describe('PROXY header parser: cases', () => {
  const sig = (rest: number[]) => Buffer.concat([V2_SIGNATURE, Buffer.from(rest)]);
  const cases: Array<[string, Buffer, string]> = [
    ['a TLS ClientHello is no header', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), 'missing'],
    ['an HTTP request is no header', Buffer.from('GET / HTTP/1.1\r\n'), 'missing'],
    ['version 1 in the binary form', sig([0x11, 0x11, 0, 12]), 'invalid'],
    ['an unknown command', sig([0x22, 0x11, 0, 12]), 'invalid'],
    ['an unknown family', sig([0x21, 0x41, 0, 0]), 'invalid'],
    ['UDP', sig([0x21, 0x12, 0, 12, ...new Array<number>(12).fill(1)]), 'invalid'],
    ['an address block shorter than its family', sig([0x21, 0x21, 0, 12, ...new Array<number>(12).fill(1)]), 'invalid'],
    ['a TLV that runs past the header', sig([0x21, 0x11, 0, 15, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 0x04, 0, 9]), 'invalid'],
    ['a length over the cap', sig([0x21, 0x11, (V2_MAX_PAYLOAD + 1) >> 8, (V2_MAX_PAYLOAD + 1) & 255]), 'invalid'],
    ['v1 with a bad address', Buffer.from('PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n'), 'invalid'],
    ['v1 with a port over 65535', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n'), 'invalid'],
    ['v1 with a leading-zero port', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n'), 'invalid'],
    ['v1 with an IPv6 address under TCP4', Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n'), 'invalid'],
    ['v1 with two spaces', Buffer.from('PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n'), 'invalid'],
    ['v1 with LF only', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n'), 'invalid'],
    ['v1 with a CR not followed by LF', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX'), 'invalid'],
    ['v1 with no end within 107 bytes', Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}`), 'invalid'],
    ['v1 cut short', Buffer.from('PROXY TCP4 1.2.3.4'), 'incomplete'],
  ];
  for (const [desc, buf, kind] of cases) it(desc, () => assert.equal(parse(buf).kind, kind));

  it('LOCAL (the proxy\'s health check) and UNSPEC name no client: the connection\'s own address counts', () => {
    const local = sig([0x20, 0x00, 0, 0]);
    assert.deepEqual(parse(Buffer.concat([local, Buffer.from([0x16])])), { kind: 'ok', version: 2, length: 16, source: null });
    const unspec = sig([0x21, 0x00, 0, 3, 9, 9, 9]);
    assert.deepEqual(parse(unspec), { kind: 'ok', version: 2, length: 19, source: null });
  });

  it('an IPv4-mapped IPv6 source is given as IPv4; IPv6 is given in its short form', () => {
    const r = parse(buildProxyV2({ address: '::ffff:203.0.113.9', port: 1 }, { address: '::1', port: 443 }));
    assert.equal(r.kind === 'ok' && r.source?.address, '203.0.113.9');
    const v1 = parse(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 5 443\r\n'));
    assert.equal(v1.kind === 'ok' && v1.source?.address, '2001:db8::1');
  });

  it('counts what starts like either header as one (for the proxy_untrusted refusal)', () => {
    assert.ok(looksLikeProxyHeader(Buffer.from('PROXY TCP4 ')));
    assert.ok(looksLikeProxyHeader(V2_SIGNATURE));
    assert.ok(!looksLikeProxyHeader(Buffer.from('GET / ')));
    assert.ok(!looksLikeProxyHeader(Buffer.from([0x16, 3, 1, 0, 5])));
  });
});
