import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseClientHello, type ClientHelloResult } from '../../gateway/client-hello.js';
import {
  buildClientHello,
  captureClientHello,
  ext,
  feed,
  lengthFields,
  refragment,
  splitChunks,
  type Extension,
  type HelloParts,
} from '../helpers/client-hello.js';

// 100,000 runs in all. Each run is cheap (small inputs, one parse or a few prefix parses), which keeps the
// file well under a minute on two cores.
const RUNS = {
  arbitraryBytes: 20_000,
  plausibleRecords: 20_000,
  mutatedHellos: 30_000,
  wellFormed: 20_000,
  refragmented: 9_950,
  realStack: 50,
};
const BIG = 1 << 20;
const KINDS = new Set(['incomplete', 'not-tls', 'invalid', 'too-large', 'ok']);

/**
 * The name rules spelled out independently of the parser: ASCII only, A–Z lowered, one trailing dot
 * dropped, 1..253 characters, labels 1..63 of LDH without edge hyphens, last label not a number.
 */
function expectedName(raw: Buffer): string | null {
  if (raw.some((b) => b > 0x7f)) return null;
  let name = [...raw.toString('latin1')].map((c) => (c >= 'A' && c <= 'Z' ? c.toLowerCase() : c)).join('');
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length < 1 || name.length > 253) return null;
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length < 1 || label.length > 63 || label.startsWith('-') || label.endsWith('-')) return null;
    if (![...label].every((c) => (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c === '-')) return null;
  }
  const last = labels[labels.length - 1] ?? '';
  if (/^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/.test(last)) return null;
  return name;
}

/** Invariants every result must satisfy, whatever the input. */
function assertSane(result: ClientHelloResult): void {
  assert.ok(KINDS.has(result.kind), `unknown kind ${result.kind}`);
  if (result.kind === 'not-tls') assert.equal(typeof result.http, 'boolean');
  if (result.kind === 'invalid') assert.ok(typeof result.reason === 'string' && result.reason.length > 0);
  if (result.kind !== 'ok') return;
  assert.equal(typeof result.ech, 'boolean');
  assert.ok(result.alpn.every((p) => typeof p === 'string' && p.length > 0));
  if (result.serverName === null) return;
  assert.ok(result.serverName.length <= 253, result.serverName);
  // A normalised name is a fixed point of normalisation and carries no trailing dot.
  assert.equal(expectedName(Buffer.from(result.serverName, 'latin1')), result.serverName);
  assert.ok(!result.serverName.endsWith('.'));
}

/** Mostly a cap that never bites, so deeper structure gets exercised; sometimes one anywhere in range. */
const maxBytesArb = fc.oneof({ arbitrary: fc.constant(BIG), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 70_000 }), weight: 1 });
/** fast-check keeps arrays short by default; 'max' lets them use the whole length range. */
const bytesArb = (maxLength: number): fc.Arbitrary<Uint8Array> =>
  fc.oneof(fc.uint8Array({ maxLength }), fc.uint8Array({ maxLength, size: 'max' }));

// ---------------------------------------------------------------------------------------------------
// Generators for well-formed hellos

const lower = 'abcdefghijklmnopqrstuvwxyz';
const alnum = `${lower}${lower.toUpperCase()}0123456789`;
const alnumArb = fc.constantFrom(...alnum);
const labelArb = fc.oneof(
  { arbitrary: alnumArb, weight: 1 },
  ...(['small', 'max'] as const).map((size) => ({
    arbitrary: fc
      .tuple(alnumArb, fc.string({ unit: fc.constantFrom(...alnum, '-'), maxLength: 61, size }), alnumArb)
      .map(([a, mid, b]) => `${a}${mid}${b}`),
    weight: size === 'small' ? 4 : 1,
  })),
);
/** Mostly valid names in random case; long ones and numeric last labels sometimes make them invalid. */
const hostnameArb = fc
  .tuple(fc.array(labelArb, { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([labels, dot]) => `${labels.join('.')}${dot ? '.' : ''}`);
const protocolArb = fc.uint8Array({ minLength: 1, maxLength: 20 }).map((a) => Buffer.from(a));

interface Spec {
  parts: HelloParts;
  name: Buffer | null;
  alpn: Buffer[] | null;
  ech: boolean;
}

const specArb: fc.Arbitrary<Spec> = fc
  .record({
    name: fc.option(hostnameArb.map((n) => Buffer.from(n, 'latin1')), { freq: 5 }),
    alpn: fc.option(fc.array(protocolArb, { minLength: 1, maxLength: 5 }), { freq: 2 }),
    ech: fc.boolean(),
    padding: fc.option(fc.integer({ min: 0, max: 600 }), { freq: 2 }),
    grease: fc.uniqueArray(fc.integer({ min: 0, max: 15 }), { maxLength: 3 }),
    keyShare: fc.option(fc.constantFrom(32, 1216), { freq: 2 }),
    sessionId: fc.uint8Array({ maxLength: 32 }),
    random: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    cipherSuites: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 20 }),
    compression: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 }),
  })
  .chain((r) => {
    const exts: Extension[] = [ext.supportedVersions(), ...r.grease.map((g) => ext.grease(g))];
    if (r.name !== null) exts.push(ext.serverName(r.name));
    if (r.alpn !== null) exts.push(ext.alpn(...r.alpn));
    if (r.ech) exts.push(ext.ech());
    if (r.padding !== null) exts.push(ext.padding(r.padding));
    if (r.keyShare !== null) exts.push(ext.keyShare(r.keyShare));
    return fc.shuffledSubarray(exts, { minLength: exts.length }).map(
      (shuffled): Spec => ({
        parts: {
          random: Buffer.from(r.random),
          sessionId: Buffer.from(r.sessionId),
          cipherSuites: r.cipherSuites,
          compression: r.compression,
          extensions: shuffled,
        },
        name: r.name,
        alpn: r.alpn,
        ech: r.ech,
      }),
    );
  });
/** Sometimes a pre-TLS 1.3 hello with no extensions block at all. */
const wellFormedArb = fc.oneof(
  { arbitrary: specArb, weight: 19 },
  { arbitrary: fc.constant<Spec>({ parts: { extensions: null }, name: null, alpn: null, ech: false }), weight: 1 },
);

function expectedFor(spec: Spec): ClientHelloResult | 'invalid' {
  const serverName = spec.name === null ? null : expectedName(spec.name);
  if (spec.name !== null && serverName === null) return 'invalid';
  return { kind: 'ok', serverName, alpn: (spec.alpn ?? []).map((p) => p.toString('latin1')), ech: spec.ech };
}

function checkExpected(actual: ClientHelloResult, expected: ClientHelloResult | 'invalid'): void {
  if (expected === 'invalid') assert.equal(actual.kind, 'invalid');
  else assert.deepEqual(actual, expected);
}

// ---------------------------------------------------------------------------------------------------
// Bases and mutations

const real = await Promise.all([
  captureClientHello({ servername: 'Real.Example.' }),
  captureClientHello({ servername: 'h.example', ALPNProtocols: ['h2', 'http/1.1'] }),
  captureClientHello({}),
]);
const synthetic = [
  buildClientHello({ extensions: [ext.grease(2), ext.serverName('syn.example'), ext.alpn('h2'), ext.ech(), ext.padding(64)] }),
  buildClientHello({ sessionId: Buffer.alloc(32, 1), extensions: [ext.keyShare(1216), ext.serverName('pq.example')] }),
  buildClientHello({ extensions: null }),
];
const bases = [...real, ...synthetic];

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'length'; field: number; value: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    op: fc.constant('length' as const),
    field: fc.nat(),
    value: fc.oneof(fc.integer({ min: -2, max: 2 }), fc.integer({ min: 0, max: 0xffffff })),
  }),
);

function mutate(buf: Buffer, m: Mutation): Buffer {
  const at = buf.length === 0 ? 0 : m.op === 'length' ? 0 : m.at % (buf.length + 1);
  switch (m.op) {
    case 'flip': {
      if (at >= buf.length) return buf;
      const out = Buffer.from(buf);
      out.writeUInt8((out.readUInt8(at) ^ (1 << m.bit)) & 0xff, at);
      return out;
    }
    case 'truncate':
      return buf.subarray(0, at);
    case 'insert':
      return Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
    case 'delete':
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.count)]);
    case 'length': {
      // Small values nudge the field by ±2; large ones replace it outright.
      const fields = lengthFields(buf).filter((f) => f.offset + f.width <= buf.length);
      const f = fields[m.field % Math.max(1, fields.length)];
      if (f === undefined) return buf;
      const limit = 2 ** (8 * f.width);
      const current = buf.readUIntBE(f.offset, f.width);
      const value = Math.abs(m.value) <= 2 ? current + m.value : m.value;
      const out = Buffer.from(buf);
      out.writeUIntBE(((value % limit) + limit) % limit, f.offset, f.width);
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Properties

describe('parseClientHello properties', () => {
  it('arbitrary bytes: never throws, always a known kind', () => {
    const input = fc.oneof(bytesArb(600), bytesArb(600).map((a) => Uint8Array.from([0x16, ...a])));
    fc.assert(
      fc.property(input, maxBytesArb, (bytes, maxBytes) => {
        assertSane(parseClientHello(Buffer.from(bytes), maxBytes));
      }),
      { numRuns: RUNS.arbitraryBytes },
    );
  });

  it('plausible record streams: never throws, always a known kind', () => {
    const record = fc.record({
      type: fc.oneof({ arbitrary: fc.constant(22), weight: 12 }, fc.constantFrom(20, 21, 23)),
      major: fc.oneof({ arbitrary: fc.constant(3), weight: 20 }, fc.constantFrom(0, 2, 4, 0x16)),
      minor: fc.integer({ min: 0, max: 4 }),
      length: fc.oneof(
        { arbitrary: fc.integer({ min: 1, max: 80 }), weight: 10 },
        { arbitrary: fc.constantFrom(0, 16384, 16385, 0xffff), weight: 1 },
      ),
      payload: fc.oneof(
        { arbitrary: bytesArb(80), weight: 1 },
        {
          // A ClientHello-looking start: type 1 and a (mostly small) 24-bit length, then noise.
          arbitrary: fc
            .tuple(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0xffffff })), bytesArb(76))
            .map(([len, rest]) => Uint8Array.from([1, len >> 16, (len >> 8) & 0xff, len & 0xff, ...rest])),
          weight: 3,
        },
      ),
    });
    const stream = fc.array(record, { minLength: 1, maxLength: 6 }).map((records) =>
      Buffer.concat(
        records.map((r, i) =>
          Buffer.concat([
            Buffer.from([i === 0 ? 22 : r.type, r.major, r.minor, r.length >> 8, r.length & 0xff]),
            r.payload.subarray(0, r.length),
          ]),
        ),
      ),
    );
    fc.assert(
      fc.property(stream, maxBytesArb, (buf, maxBytes) => assertSane(parseClientHello(buf, maxBytes))),
      { numRuns: RUNS.plausibleRecords },
    );
  });

  it('mutated real and synthetic hellos: never throws, names stay normalised', () => {
    const input = fc.tuple(
      fc.integer({ min: 0, max: bases.length - 1 }),
      fc.boolean(),
      fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
    );
    fc.assert(
      fc.property(input, maxBytesArb, ([base, split, mutations], maxBytes) => {
        const start = bases[base] ?? assert.fail();
        // Mutating a multi-record copy also corrupts inner record headers.
        const buf = mutations.reduce(mutate, split ? refragment(start, 97) : start);
        assertSane(parseClientHello(buf, maxBytes));
      }),
      { numRuns: RUNS.mutatedHellos },
    );
  });

  it('well-formed synthetic hellos parse to the generated name, ALPN and ECH flag', () => {
    fc.assert(
      fc.property(wellFormedArb, (spec) => {
        const result = parseClientHello(buildClientHello(spec.parts), BIG);
        assertSane(result);
        checkExpected(result, expectedFor(spec));
      }),
      { numRuns: RUNS.wellFormed },
    );
  });

  it('random record sizes and TCP chunk boundaries give the same result', () => {
    const sizes = fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 6 });
    const chunks = fc.array(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 1500 })), {
      minLength: 1,
      maxLength: 6,
    });
    fc.assert(
      fc.property(wellFormedArb, sizes, chunks, (spec, recordSizes, chunkSizes) => {
        const whole = buildClientHello(spec.parts);
        const results = feed(splitChunks(refragment(whole, recordSizes), chunkSizes), BIG);
        assert.ok(results.slice(0, -1).every((r) => r.kind === 'incomplete'));
        assert.deepEqual(results.at(-1), parseClientHello(whole, BIG));
      }),
      { numRuns: RUNS.refragmented },
    );
  });

  it("agrees with Node's TLS stack on random valid hostnames", async () => {
    // A letter-led last label keeps Node from treating the name as an IP address (which it would not send
    // without a warning) and keeps every generated name valid.
    const validName = fc
      .tuple(hostnameArb, fc.constantFrom(...lower), fc.string({ unit: alnumArb, maxLength: 10 }))
      .map(([host, a, rest]) => `${host.replace(/\.$/, '')}.${a}${rest}`)
      .filter((n) => n.length <= 253);
    await fc.assert(
      fc.asyncProperty(validName, fc.boolean(), async (name, dot) => {
        const sent = dot ? `${name}.` : name;
        const result = parseClientHello(await captureClientHello({ servername: sent }), BIG);
        assert.deepEqual(result, { kind: 'ok', serverName: name.toLowerCase(), alpn: [], ech: false });
      }),
      { numRuns: RUNS.realStack },
    );
  });
});
