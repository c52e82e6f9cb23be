import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { newHelloScan, normalizeServerName, parseClientHello, type ClientHelloResult } from '../../gateway/client-hello.js';
import {
  bigAlpnList,
  buildClientHello,
  captureClientHello,
  ext,
  feed,
  handshake,
  helloBody,
  readHandshake,
  recordHeader,
  refragment,
  splitChunks,
  toRecords,
  u16,
  vec16,
  type Extension,
} from '../helpers/client-hello.js';

const MAX = 64 * 1024;
const ok = (serverName: string | null, alpn: string[] = [], ech = false): ClientHelloResult => ({
  kind: 'ok',
  serverName,
  alpn,
  ech,
});
/** `'invalid'` means "kind invalid, any reason"; reasons are free text for logs. */
type Expected = ClientHelloResult | 'invalid';

function check(actual: ClientHelloResult, expected: Expected): void {
  if (expected === 'invalid') assert.equal(actual.kind, 'invalid', JSON.stringify(actual));
  else assert.deepEqual(actual, expected);
}

const withName = (name: string | Buffer, more: Extension[] = []): Buffer =>
  buildClientHello({ extensions: [ext.supportedVersions(), ext.serverName(name), ...more] });
const withBody = (body: Buffer, type = 1): Buffer => toRecords(handshake(body, type));
const recordCount = (records: Buffer): number => {
  let n = 0;
  for (let p = 0; p + 5 <= records.length; p += 5 + records.readUInt16BE(p + 3)) n++;
  return n;
};

// Real hellos from Node's TLS stack (OpenSSL). Node passes uppercase and trailing-dot names through
// unchanged, and even names with spaces, '/', CR/LF or UTF-8; it drops names > 255 bytes and OpenSSL cuts
// names at NUL, so those cases are built synthetically below.
const realCases: Array<{ desc: string; servername?: string; alpn?: string[]; expected: Expected }> = [
  { desc: 'lowercase name', servername: 'example.com', expected: ok('example.com') },
  { desc: 'uppercase name is lowercased', servername: 'Example.COM', expected: ok('example.com') },
  { desc: 'one trailing dot is stripped', servername: 'example.com.', expected: ok('example.com') },
  { desc: 'uppercase and trailing dot', servername: 'WWW.Session-42.HackStream.Test.', expected: ok('www.session-42.hackstream.test') },
  { desc: 'digits and hyphens', servername: 's1-abc.0a.example', expected: ok('s1-abc.0a.example') },
  { desc: 'single label', servername: 'localhost', expected: ok('localhost') },
  { desc: 'no SNI', expected: ok(null) },
  { desc: 'ALPN list in order', servername: 'a.test', alpn: ['h2', 'http/1.1'], expected: ok('a.test', ['h2', 'http/1.1']) },
  { desc: 'ALPN without SNI', alpn: ['acme-tls/1'], expected: ok(null, ['acme-tls/1']) },
  { desc: 'empty label', servername: 'a..b', expected: 'invalid' },
  { desc: 'space in name', servername: 'x y.example', expected: 'invalid' },
  { desc: "'/' in name", servername: '../etc/passwd', expected: 'invalid' },
  { desc: 'CR/LF in name', servername: 'a\r\nb.example', expected: 'invalid' },
  { desc: 'UTF-8 in name', servername: 'é.example', expected: 'invalid' },
  { desc: 'underscore in name', servername: 'a_b.example', expected: 'invalid' },
];
const real = await Promise.all(
  realCases.map((c) => captureClientHello({ servername: c.servername, ALPNProtocols: c.alpn })),
);
const plain = await captureClientHello({ servername: 'Plain.Example.' });
const big = await captureClientHello({ servername: 'big.example', ALPNProtocols: bigAlpnList(20_000) });
const bigExpected = ok('big.example', bigAlpnList(20_000));

describe('parseClientHello: real hellos from Node TLS', () => {
  realCases.forEach((c, i) => {
    it(c.desc, () => {
      const hello = real[i] ?? assert.fail('capture missing');
      check(parseClientHello(hello, MAX), c.expected);
      check(feed(splitChunks(hello, 1), MAX).at(-1) ?? assert.fail(), c.expected);
    });
  });

  it('a hello over 16 KiB arrives as two records from OpenSSL and parses', () => {
    assert.equal(recordCount(big), 2);
    assert.ok(big.length > 16 * 1024);
    assert.deepEqual(parseClientHello(big, MAX), bigExpected);
  });
});

describe('parseClientHello: reassembly', () => {
  it('every prefix is incomplete until the last byte (normal hello, fed byte by byte)', () => {
    const results = feed(splitChunks(plain, 1), MAX);
    assert.ok(results.slice(0, -1).every((r) => r.kind === 'incomplete'));
    assert.deepEqual(results.at(-1), ok('plain.example'));
  });

  it('every prefix is incomplete until the last byte (16 KiB+ hello, two records)', () => {
    // Prefix views rather than concatenation, so the test measures the parser and stays fast.
    for (let n = 0; n < big.length; n++) assert.equal(parseClientHello(big.subarray(0, n), MAX).kind, 'incomplete');
    assert.deepEqual(parseClientHello(big, MAX), bigExpected);
  });

  const sizes = [...Array.from({ length: 64 }, (_, i) => i + 1), 100, 255, 1000, 4096, 16384];
  it('re-fragmented into records of 1..64, 100, 255, 1000, 4096 and 16384 bytes', () => {
    for (const size of sizes) {
      assert.deepEqual(parseClientHello(refragment(plain, size), MAX), ok('plain.example'), `records of ${size}`);
    }
  });

  it('re-fragmented 16 KiB+ hello (1, 7, 1000, 16384-byte records)', () => {
    for (const size of [1, 7, 1000, 16384]) {
      assert.deepEqual(parseClientHello(refragment(big, size), 1 << 20), bigExpected, `records of ${size}`);
    }
  });

  it('re-fragmented into 3-byte records and fed byte by byte', () => {
    const results = feed(splitChunks(refragment(plain, 3), 1), MAX);
    assert.ok(results.slice(0, -1).every((r) => r.kind === 'incomplete'));
    assert.deepEqual(results.at(-1), ok('plain.example'));
  });

  it('SNI in a later record than the handshake header', () => {
    const hello = withName('later.example', [ext.padding(300)]);
    const records = refragment(hello, [60, 16384]); // the SNI extension starts past byte 60 of the message
    assert.equal(recordCount(records), 2);
    assert.deepEqual(parseClientHello(records, MAX), ok('later.example'));
  });

  it('resumes the record walk where it stopped, so a drip of tiny records costs O(1) per read', () => {
    const records = refragment(plain, 1); // 1-byte records: 6 bytes each
    const scan = newHelloScan();
    const half = Math.floor(records.length / 12) * 6 + 3; // stops in the middle of a record
    assert.equal(parseClientHello(records.subarray(0, half), MAX, scan).kind, 'incomplete');
    assert.equal(scan.pos, half - 3, 'the walk committed every complete record and no partial one');
    assert.deepEqual(parseClientHello(records, MAX, scan), ok('plain.example'));
  });

  it('uneven TCP chunks over uneven records', () => {
    const chunks = splitChunks(refragment(plain, [5, 1, 200, 2]), [1, 3, 1400, 2, 7]);
    const results = feed(chunks, MAX);
    assert.ok(results.slice(0, -1).every((r) => r.kind === 'incomplete'));
    assert.deepEqual(results.at(-1), ok('plain.example'));
  });

  const trailers: Array<{ desc: string; extra: Buffer }> = [
    { desc: 'application data record', extra: Buffer.concat([recordHeader(23, 0x0303, 3), Buffer.from('abc')]) },
    { desc: 'garbage bytes', extra: Buffer.from('\x00\xff GET / HTTP/1.1\r\n', 'latin1') },
    { desc: 'an oversize record header', extra: recordHeader(22, 0x0303, 0xffff) },
  ];
  for (const t of trailers) {
    it(`ignores pipelined bytes after the hello: ${t.desc}`, () => {
      assert.deepEqual(parseClientHello(Buffer.concat([plain, t.extra]), MAX), ok('plain.example'));
    });
  }

  it('ignores the rest of the record that ends the hello', () => {
    const message = readHandshake(withName('tail.example'))?.message ?? assert.fail();
    const tail = Buffer.from([0x0b, 0, 0, 0]); // a second handshake message in the same record
    const records = toRecords(Buffer.concat([message, tail]));
    assert.deepEqual(parseClientHello(records, MAX), ok('tail.example'));
    assert.deepEqual(parseClientHello(records.subarray(0, records.length - tail.length), MAX), ok('tail.example'));
  });
});

describe('parseClientHello: size cap (maxBytes counts record headers)', () => {
  const cases: Array<{ desc: string; input: () => Buffer; maxBytes: number; expected: ClientHelloResult['kind'] }> = [
    { desc: 'exactly maxBytes → ok', input: () => plain, maxBytes: plain.length, expected: 'ok' },
    { desc: 'one byte over → too-large', input: () => plain, maxBytes: plain.length - 1, expected: 'too-large' },
    { desc: 'decided from the first 9 bytes (handshake length)', input: () => big.subarray(0, 9), maxBytes: 16384, expected: 'too-large' },
    { desc: '16 KiB+ hello under a 16 KiB cap', input: () => big, maxBytes: 16384, expected: 'too-large' },
    { desc: '16 KiB+ hello under a 64 KiB cap', input: () => big, maxBytes: MAX, expected: 'ok' },
    // 1-byte records: the length is known after 4 records (24 bytes); the rest needs >= its payload + one header.
    {
      desc: 'record headers already buffered count (1-byte records, cap one byte short)',
      input: () => refragment(plain, 1).subarray(0, 24),
      maxBytes: plain.length + 19,
      expected: 'too-large',
    },
    {
      desc: 'record headers already buffered count (1-byte records, cap just enough so far)',
      input: () => refragment(plain, 1).subarray(0, 24),
      maxBytes: plain.length + 20,
      expected: 'incomplete',
    },
    {
      desc: 'cap reached later by the headers of 1-byte records',
      input: () => refragment(plain, 1).subarray(0, plain.length + 20),
      maxBytes: plain.length + 20,
      expected: 'too-large',
    },
    {
      desc: '24-bit handshake length 0xffffff in a small record',
      input: () => Buffer.from([22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]),
      maxBytes: MAX,
      expected: 'too-large',
    },
    {
      desc: 'maxBytes buffered while the length is still unknown',
      input: () => Buffer.from([22, 3, 1]),
      maxBytes: 3,
      expected: 'too-large',
    },
    {
      desc: 'pipelined bytes beyond maxBytes do not count',
      input: () => Buffer.concat([plain, Buffer.alloc(100)]),
      maxBytes: plain.length,
      expected: 'ok',
    },
    { desc: 'truncated prefix within the cap stays incomplete', input: () => plain.subarray(0, 100), maxBytes: MAX, expected: 'incomplete' },
  ];
  for (const c of cases) {
    it(c.desc, () => assert.equal(parseClientHello(c.input(), c.maxBytes).kind, c.expected));
  }
});

describe('parseClientHello: record framing', () => {
  const message = readHandshake(withName('frame.example'))?.message ?? assert.fail();
  const head = message.subarray(0, 40);
  const rest = message.subarray(40);
  const rec = (type: number, body: Buffer, version = 0x0301): Buffer =>
    Buffer.concat([recordHeader(type, version, body.length), body]);
  const cases: Array<{ desc: string; input: Buffer; expected: Expected }> = [
    { desc: 'control: two handshake records', input: Buffer.concat([rec(22, head), rec(22, rest)]), expected: ok('frame.example') },
    { desc: 'application data record inside the hello', input: Buffer.concat([rec(22, head), rec(23, rest)]), expected: 'invalid' },
    { desc: 'change_cipher_spec record inside the hello', input: Buffer.concat([rec(22, head), rec(20, Buffer.from([1]))]), expected: 'invalid' },
    { desc: 'alert record inside the hello', input: Buffer.concat([rec(22, head), rec(21, Buffer.from([2, 40]))]), expected: 'invalid' },
    { desc: 'zero-length first record', input: Buffer.concat([rec(22, Buffer.alloc(0)), rec(22, message)]), expected: 'invalid' },
    { desc: 'zero-length record in the middle', input: Buffer.concat([rec(22, head), rec(22, Buffer.alloc(0))]), expected: 'invalid' },
    { desc: 'record length 16385 (header alone is enough)', input: recordHeader(22, 0x0301, 16385), expected: 'invalid' },
    { desc: 'record length 0xffff', input: recordHeader(22, 0x0301, 0xffff), expected: 'invalid' },
    { desc: 'record version major 2', input: rec(22, message, 0x0200), expected: 'invalid' },
    { desc: 'record version major 4 in the second record', input: Buffer.concat([rec(22, head), rec(22, rest, 0x0403)]), expected: 'invalid' },
    { desc: 'handshake type 2 (ServerHello)', input: withBody(helloBody(), 2), expected: 'invalid' },
    { desc: 'handshake type 2 known from one byte', input: Buffer.from([22, 3, 3, 0, 50, 2]), expected: 'invalid' },
    { desc: 'handshake type 0 across 1-byte records', input: refragment(withBody(helloBody(), 0), 1).subarray(0, 6), expected: 'invalid' },
    { desc: 'only a record header', input: Buffer.from([22, 3, 1, 0, 200]), expected: { kind: 'incomplete' } },
    { desc: 'empty buffer', input: Buffer.alloc(0), expected: { kind: 'incomplete' } },
  ];
  for (const c of cases) it(c.desc, () => check(parseClientHello(c.input, MAX), c.expected));
});

describe('parseClientHello: ClientHello structure', () => {
  const sni = ext.serverName('s.example');
  const extBlock = (...exts: Extension[]): Buffer =>
    Buffer.concat(exts.map((e) => Buffer.concat([u16(e.type), vec16(e.data)])));
  const noExt = helloBody({ extensions: null });
  const sniData = (list: Buffer): Extension => ext.raw(0, list);
  const entry = (type: number, name: string): Buffer => Buffer.concat([Buffer.from([type]), vec16(Buffer.from(name))]);
  const cases: Array<{ desc: string; input: Buffer; expected: Expected }> = [
    { desc: 'no extensions block at all', input: withBody(noExt), expected: ok(null) },
    { desc: 'empty extensions block', input: buildClientHello({ extensions: [] }), expected: ok(null) },
    { desc: 'session_id of 32 bytes', input: buildClientHello({ sessionId: Buffer.alloc(32, 7) }), expected: ok(null) },
    { desc: 'session_id of 33 bytes', input: buildClientHello({ sessionId: Buffer.alloc(33, 7) }), expected: 'invalid' },
    { desc: 'no cipher suites', input: buildClientHello({ cipherSuites: [] }), expected: 'invalid' },
    {
      desc: 'odd cipher_suites length',
      input: withBody(Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32), Buffer.from([0, 0, 3, 0x13, 0x01, 0x13, 1, 0])])),
      expected: 'invalid',
    },
    { desc: 'no compression methods', input: buildClientHello({ compression: [] }), expected: 'invalid' },
    { desc: 'handshake length one short of the body', input: toRecords(handshake(helloBody(), 1, helloBody().length - 1)), expected: 'invalid' },
    { desc: 'body truncated inside random', input: withBody(Buffer.alloc(20, 3)), expected: 'invalid' },
    { desc: 'zero-length handshake', input: withBody(Buffer.alloc(0)), expected: 'invalid' },
    { desc: 'extensions block length too long', input: withBody(Buffer.concat([noExt, u16(extBlock(sni).length + 1), extBlock(sni)])), expected: 'invalid' },
    { desc: 'extensions block length too short', input: withBody(Buffer.concat([noExt, u16(extBlock(sni).length - 1), extBlock(sni)])), expected: 'invalid' },
    { desc: 'a byte after the extensions block', input: withBody(Buffer.concat([helloBody(), Buffer.from([0])])), expected: 'invalid' },
    { desc: 'a lone byte where the extensions block would be', input: withBody(Buffer.concat([noExt, Buffer.from([0])])), expected: 'invalid' },
    {
      desc: 'extension length past the block',
      input: withBody(Buffer.concat([noExt, vec16(Buffer.concat([u16(0x1234), u16(10), Buffer.alloc(4)]))])),
      expected: 'invalid',
    },
    { desc: 'duplicate extension (ALPN twice)', input: buildClientHello({ extensions: [ext.alpn('h2'), ext.alpn('h2')] }), expected: 'invalid' },
    { desc: 'duplicate server_name extensions', input: buildClientHello({ extensions: [sni, ext.serverName('t.example')] }), expected: 'invalid' },
    { desc: 'duplicate unknown extension', input: buildClientHello({ extensions: [ext.grease(3), ext.grease(3)] }), expected: 'invalid' },
    { desc: 'two host_names', input: buildClientHello({ extensions: [ext.serverName('a.example', 'b.example')] }), expected: 'invalid' },
    { desc: 'the same host_name twice', input: buildClientHello({ extensions: [ext.serverName('a.example', 'a.example')] }), expected: 'invalid' },
    { desc: 'unknown name type only', input: buildClientHello({ extensions: [sniData(vec16(entry(1, 'a.example')))] }), expected: 'invalid' },
    {
      desc: 'host_name then an unknown name type',
      input: buildClientHello({ extensions: [sniData(vec16(Buffer.concat([entry(0, 'a.example'), entry(7, 'x')])))] }),
      expected: 'invalid',
    },
    { desc: 'empty server_name_list', input: buildClientHello({ extensions: [sniData(vec16(Buffer.alloc(0)))] }), expected: 'invalid' },
    { desc: 'empty server_name extension data', input: buildClientHello({ extensions: [sniData(Buffer.alloc(0))] }), expected: 'invalid' },
    {
      desc: 'server_name_list shorter than the extension',
      input: buildClientHello({ extensions: [sniData(Buffer.concat([vec16(entry(0, 'a.example')), Buffer.from([0])]))] }),
      expected: 'invalid',
    },
    {
      desc: 'server_name_list longer than the extension',
      input: buildClientHello({ extensions: [sniData(Buffer.concat([u16(20), entry(0, 'a.example')]))] }),
      expected: 'invalid',
    },
    { desc: 'zero-length host_name', input: withName(''), expected: 'invalid' },
    { desc: 'ALPN list', input: buildClientHello({ extensions: [ext.alpn('h2', 'http/1.1', 'acme-tls/1')] }), expected: ok(null, ['h2', 'http/1.1', 'acme-tls/1']) },
    { desc: 'ALPN names keep every byte (latin1)', input: buildClientHello({ extensions: [ext.alpn(Buffer.from([0xf3, 0xb1]))] }), expected: ok(null, ['\u00f3\u00b1']) },
    { desc: 'empty ALPN list', input: buildClientHello({ extensions: [ext.raw(16, vec16(Buffer.alloc(0)))] }), expected: 'invalid' },
    { desc: 'empty ALPN protocol name', input: buildClientHello({ extensions: [ext.alpn('h2', '')] }), expected: 'invalid' },
    { desc: 'ALPN list length mismatch', input: buildClientHello({ extensions: [ext.raw(16, Buffer.from([0, 4, 2, 0x68, 0x32]))] }), expected: 'invalid' },
    { desc: 'ECH extension sets ech', input: withName('public.example', [ext.ech()]), expected: ok('public.example', [], true) },
    { desc: 'ECH without SNI', input: buildClientHello({ extensions: [ext.ech(Buffer.alloc(0))] }), expected: ok(null, [], true) },
    {
      desc: 'GREASE, padding, key_share and unknown extensions are skipped',
      input: buildClientHello({
        extensions: [ext.grease(0), ext.keyShare(1216), ext.serverName('g.example'), ext.raw(0x7777, 'x'), ext.padding(512), ext.grease(15, Buffer.from([1]))],
      }),
      expected: ok('g.example'),
    },
  ];
  for (const c of cases) it(c.desc, () => check(parseClientHello(c.input, MAX), c.expected));
});

describe('server name normalisation', () => {
  const label63 = 'a'.repeat(63);
  const name253 = [label63, label63, label63, 'b'.repeat(61)].join('.');
  const cases: Array<{ desc: string; raw: string | Buffer; expected: string | null }> = [
    { desc: 'ASCII-lowercased', raw: 'MiXeD.Example.ORG', expected: 'mixed.example.org' },
    { desc: 'one trailing dot stripped', raw: 'a.example.', expected: 'a.example' },
    { desc: 'two trailing dots', raw: 'a.example..', expected: null },
    { desc: 'only a dot', raw: '.', expected: null },
    { desc: 'leading dot', raw: '.a.example', expected: null },
    { desc: 'label of 63', raw: `${label63}.example`, expected: `${label63}.example` },
    { desc: 'label of 64', raw: `a${label63}.example`, expected: null },
    { desc: '253 characters', raw: name253, expected: name253 },
    { desc: '253 characters plus trailing dot', raw: `${name253}.`, expected: name253 },
    { desc: '254 characters', raw: `c${name253}`, expected: null },
    { desc: '255 characters', raw: `cc${name253}`, expected: null },
    { desc: 'punycode label', raw: 'xn--bcher-kva.example', expected: 'xn--bcher-kva.example' },
    { desc: 'numeric labels before a TLD', raw: '1.2.3.com', expected: '1.2.3.com' },
    { desc: 'leading hyphen', raw: '-a.example', expected: null },
    { desc: 'trailing hyphen', raw: 'a-.example', expected: null },
    { desc: 'underscore', raw: '_acme.example', expected: null },
    { desc: 'wildcard', raw: '*.example', expected: null },
    { desc: 'CR', raw: 'a\rb.example', expected: null },
    { desc: 'LF', raw: 'a\nb.example', expected: null },
    { desc: 'NUL', raw: 'a\0.example', expected: null },
    { desc: "'/'", raw: 'a/b.example', expected: null },
    { desc: 'path traversal', raw: '..', expected: null },
    { desc: 'space', raw: 'a b.example', expected: null },
    { desc: 'high-bit bytes are not folded (F3 B1 → not s1)', raw: Buffer.from('\xf3\xb1.bench.test', 'latin1'), expected: null },
    { desc: 'high-bit uppercase is not folded', raw: Buffer.from('\xc1.example', 'latin1'), expected: null },
    { desc: 'UTF-8 name', raw: Buffer.from('bücher.example', 'utf8'), expected: null },
    { desc: 'Kelvin sign (lowercases to k in Unicode)', raw: Buffer.from('\u212a.example', 'utf8'), expected: null },
    { desc: 'IPv4 literal', raw: '1.2.3.4', expected: null },
    { desc: 'IPv4 literal with trailing dot', raw: '192.168.0.1.', expected: null },
    { desc: 'short IPv4 form', raw: '127.1', expected: null },
    { desc: 'IPv4 as one number', raw: '2130706433', expected: null },
    { desc: 'hex IPv4', raw: '0x7f000001', expected: null },
    { desc: 'hex last label', raw: 'a.0X7F', expected: null },
    { desc: 'IPv6 literal', raw: '::1', expected: null },
    { desc: 'bracketed IPv6 literal', raw: '[::1]', expected: null },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const raw = typeof c.raw === 'string' ? Buffer.from(c.raw, 'latin1') : c.raw;
      assert.equal(normalizeServerName(raw), c.expected);
      // Through the parser a bad name must fail closed, never come back as "no SNI".
      check(parseClientHello(withName(raw), MAX), c.expected === null ? 'invalid' : ok(c.expected));
    });
  }
});

describe('parseClientHello: not TLS', () => {
  const cases: Array<{ desc: string; input: string | Buffer; http: boolean }> = [
    { desc: 'GET request line', input: 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', http: true },
    { desc: 'POST', input: 'POST /api HTTP/1.1\r\n', http: true },
    { desc: 'HEAD', input: 'HEAD / HTTP/1.0\r\n', http: true },
    { desc: 'PUT', input: 'PUT /x HTTP/1.1\r\n', http: true },
    { desc: 'DELETE', input: 'DELETE /x HTTP/1.1\r\n', http: true },
    { desc: 'OPTIONS', input: 'OPTIONS * HTTP/1.1\r\n', http: true },
    { desc: 'CONNECT', input: 'CONNECT a.example:443 HTTP/1.1\r\n', http: true },
    { desc: 'PATCH', input: 'PATCH /x HTTP/1.1\r\n', http: true },
    { desc: 'HTTP/2 preface', input: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', http: true },
    { desc: 'any uppercase token and a space', input: 'BREW /pot HTCPCP/1.0\r\n', http: true },
    { desc: "a single 'G' byte", input: 'G', http: true },
    { desc: 'a method prefix', input: 'OPTI', http: true },
    { desc: 'a single byte that starts no method', input: 'Z', http: false },
    { desc: 'uppercase token that is no method yet', input: 'GETX', http: false },
    { desc: 'lowercase method', input: 'get / HTTP/1.1\r\n', http: false },
    { desc: 'leading space', input: ' GET / HTTP/1.1\r\n', http: false },
    { desc: 'text', input: 'hello world', http: false },
    { desc: 'NUL bytes', input: Buffer.alloc(8), http: false },
    { desc: 'SSLv2-style hello', input: Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]), http: false },
    { desc: 'TLS application data record', input: Buffer.from([23, 3, 3, 0, 1, 0]), http: false },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const input = typeof c.input === 'string' ? Buffer.from(c.input, 'latin1') : c.input;
      assert.deepEqual(parseClientHello(input, MAX), { kind: 'not-tls', http: c.http });
    });
  }
});
