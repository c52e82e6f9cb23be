/**
 * ClientHello fixtures: capture real hellos from Node's TLS stack (OpenSSL), re-fragment them into other
 * record and TCP-chunk sizes, and build synthetic hellos from parts. The record walking here is written
 * independently of gateway/client-hello.ts so that the fixtures do not inherit its bugs.
 */
import net from 'node:net';
import tls from 'node:tls';
import assert from 'node:assert/strict';
import { newHelloScan, parseClientHello, type ClientHelloResult } from '../../gateway/client-hello.js';

const MAX_RECORD = 16384;

// ---------------------------------------------------------------------------------------------------
// Record framing

/**
 * Walks handshake records from the start of `buf` until one whole handshake message is present.
 * Returns the message (4-byte header included) and how many buffered bytes its records took, or null.
 */
export function readHandshake(buf: Buffer): { message: Buffer; consumed: number } | null {
  const payload: Buffer[] = [];
  let have = 0;
  for (let pos = 0; pos + 5 <= buf.length; ) {
    const length = buf.readUInt16BE(pos + 3);
    if (buf[pos] !== 22 || length === 0 || pos + 5 + length > buf.length) return null;
    payload.push(buf.subarray(pos + 5, pos + 5 + length));
    have += length;
    pos += 5 + length;
    const joined = Buffer.concat(payload);
    if (have >= 4 && have >= 4 + joined.readUIntBE(1, 3)) {
      return { message: joined.subarray(0, 4 + joined.readUIntBE(1, 3)), consumed: pos };
    }
  }
  return null;
}

/** Wraps a handshake message in handshake records whose payload sizes cycle through `sizes`. */
export function toRecords(message: Buffer, sizes: number | readonly number[] = MAX_RECORD, version = 0x0301): Buffer {
  const cycle = typeof sizes === 'number' ? [sizes] : sizes;
  const out: Buffer[] = [];
  for (let pos = 0, i = 0; pos < message.length; i++) {
    const size = Math.max(1, Math.min(cycle[i % cycle.length] ?? MAX_RECORD, message.length - pos));
    out.push(recordHeader(22, version, size), message.subarray(pos, pos + size));
    pos += size;
  }
  return Buffer.concat(out);
}

/** Re-frames a hello (given as records) into records of the given payload sizes. */
export function refragment(records: Buffer, sizes: number | readonly number[]): Buffer {
  const hs = readHandshake(records);
  if (hs === null) throw new Error('refragment: not a complete hello');
  return toRecords(hs.message, sizes, records.readUInt16BE(1));
}

export function recordHeader(type: number, version: number, length: number): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(type, 0);
  header.writeUInt16BE(version, 1);
  header.writeUInt16BE(length, 3);
  return header;
}

/** Splits a byte stream into TCP-like chunks whose sizes cycle through `sizes`. */
export function splitChunks(buf: Buffer, sizes: number | readonly number[]): Buffer[] {
  const cycle = typeof sizes === 'number' ? [sizes] : sizes;
  const out: Buffer[] = [];
  for (let pos = 0, i = 0; pos < buf.length; i++) {
    const size = Math.max(1, cycle[i % cycle.length] ?? 1);
    out.push(buf.subarray(pos, pos + size));
    pos += size;
  }
  return out;
}

/**
 * Feeds chunks the way the gateway does: parse the whole accumulated buffer after every chunk, with one
 * scan state carried across calls. The stream is joined once and parsed as growing prefix views, which is
 * byte-for-byte what accumulation produces without the quadratic copying. Every verdict is checked
 * against a fresh, stateless parse of the same prefix, so the incremental path cannot drift from it.
 */
export function feed(chunks: readonly Buffer[], maxBytes: number): ClientHelloResult[] {
  const stream = Buffer.concat(chunks);
  const results: ClientHelloResult[] = [];
  const scan = newHelloScan();
  let end = 0;
  for (const chunk of chunks) {
    end += chunk.length;
    const prefix = stream.subarray(0, end);
    const result = parseClientHello(prefix, maxBytes, scan);
    if (result.kind !== 'incomplete' || end === stream.length) {
      assert.deepEqual(result, parseClientHello(prefix, maxBytes), 'incremental and fresh parses agree');
    }
    results.push(result);
  }
  return results;
}

// ---------------------------------------------------------------------------------------------------
// Real hellos from Node's TLS stack

export interface CaptureOptions {
  /** SNI to send; omitted → Node sends none (the host is an IP address). */
  servername?: string;
  ALPNProtocols?: string[];
}

/** Captures the records of one ClientHello that `tls.connect` sends, then tears both ends down. */
export async function captureClientHello(options: CaptureOptions = {}): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  let client: tls.TLSSocket | undefined;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('captureClientHello: timed out')), 5000);
      server.once('connection', (socket) => {
        let buffered = Buffer.alloc(0);
        socket.on('error', () => {});
        socket.on('data', (data: Buffer) => {
          buffered = Buffer.concat([buffered, data]);
          const hs = readHandshake(buffered);
          if (hs === null) return;
          clearTimeout(timer);
          socket.destroy();
          resolve(buffered.subarray(0, hs.consumed));
        });
      });
      client = tls.connect({ host: '127.0.0.1', port, ...options });
      client.on('error', () => {}); // the server side hangs up mid-handshake on purpose
    });
  } finally {
    client?.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** ALPN names long enough that the hello carries at least `bytes` of them (OpenSSL splits > 16 KiB). */
export function bigAlpnList(bytes: number): string[] {
  const names: string[] = [];
  for (let total = 0; total < bytes; total += 241) names.push(`p${String(names.length).padStart(3, '0')}`.padEnd(240, 'x'));
  return names;
}

// ---------------------------------------------------------------------------------------------------
// Synthetic hellos

export interface Extension {
  type: number;
  data: Buffer;
}

export interface HelloParts {
  version?: number;
  random?: Buffer;
  sessionId?: Buffer;
  cipherSuites?: readonly number[];
  compression?: readonly number[];
  /** null → no extensions block at all (legal for pre-TLS 1.3 clients). */
  extensions?: readonly Extension[] | null;
}

export const u8 = (n: number): Buffer => Buffer.from([n & 0xff]);
export const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
export const vec8 = (body: Buffer): Buffer => Buffer.concat([u8(body.length), body]);
export const vec16 = (body: Buffer): Buffer => Buffer.concat([u16(body.length), body]);
const bytes = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s);

/** The body of a ClientHello (no handshake header). */
export function helloBody(parts: HelloParts = {}): Buffer {
  const suites = parts.cipherSuites ?? [0x1301, 0x1302, 0xc02f];
  const fields = [
    u16(parts.version ?? 0x0303),
    parts.random ?? Buffer.alloc(32, 0x5a),
    vec8(parts.sessionId ?? Buffer.alloc(0)),
    vec16(Buffer.concat(suites.map(u16))),
    vec8(Buffer.from(parts.compression ?? [0])),
  ];
  const extensions = parts.extensions === undefined ? [ext.supportedVersions()] : parts.extensions;
  if (extensions !== null) fields.push(vec16(Buffer.concat(extensions.map(encodeExtension))));
  return Buffer.concat(fields);
}

/** A handshake message: type, 24-bit length, body. */
export function handshake(body: Buffer, type = 1, length = body.length): Buffer {
  return Buffer.concat([u8(type), Buffer.from([(length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff]), body]);
}

/** A synthetic ClientHello in records of at most 16384 bytes (or the given sizes). */
export function buildClientHello(parts: HelloParts = {}, sizes: number | readonly number[] = MAX_RECORD): Buffer {
  return toRecords(handshake(helloBody(parts)), sizes);
}

export function encodeExtension(e: Extension): Buffer {
  return Buffer.concat([u16(e.type), vec16(e.data)]);
}

export const ext = {
  raw: (type: number, data: Buffer | string = Buffer.alloc(0)): Extension => ({ type, data: bytes(data) }),
  /** server_name with one host_name entry per name. */
  serverName: (...names: Array<string | Buffer>): Extension =>
    ext.serverNameEntries(names.map((name) => ({ type: 0, name: bytes(name) }))),
  serverNameEntries: (entries: ReadonlyArray<{ type: number; name: Buffer }>): Extension => ({
    type: 0,
    data: vec16(Buffer.concat(entries.map((e) => Buffer.concat([u8(e.type), vec16(e.name)])))),
  }),
  alpn: (...protocols: Array<string | Buffer>): Extension => ({
    type: 16,
    data: vec16(Buffer.concat(protocols.map((p) => vec8(bytes(p))))),
  }),
  ech: (payload: Buffer = Buffer.alloc(40, 0xec)): Extension => ({ type: 0xfe0d, data: payload }),
  padding: (n: number): Extension => ({ type: 21, data: Buffer.alloc(n) }),
  /** RFC 8701 GREASE extension type 0x?a?a, index 0..15. */
  grease: (index: number, data: Buffer = Buffer.alloc(0)): Extension => ({ type: ((index & 15) << 12) | 0x0a0a | ((index & 15) << 4), data }),
  supportedVersions: (): Extension => ({ type: 43, data: vec8(Buffer.concat([u16(0x0304), u16(0x0303)])) }),
  keyShare: (size = 32): Extension => ({
    type: 51,
    data: vec16(Buffer.concat([u16(0x001d), vec16(Buffer.alloc(size, 0x42))])),
  }),
};

/**
 * Offsets and widths of every length field in a single-record hello (record, handshake, session_id,
 * cipher_suites, compression, extensions block, each extension, SNI and ALPN inner lists), for targeted
 * corruption in property tests. Stops quietly at anything it cannot follow.
 */
export function lengthFields(records: Buffer): Array<{ offset: number; width: number }> {
  const fields = [{ offset: 3, width: 2 }, { offset: 6, width: 3 }];
  let p = 9 + 34;
  const add = (width: number): number => {
    if (p + width > records.length) return -1;
    fields.push({ offset: p, width });
    const length = records.readUIntBE(p, width);
    p += width;
    return length;
  };
  for (const width of [1, 2, 1]) {
    const length = add(width);
    if (length < 0) return fields;
    p += length;
  }
  const blockEnd = add(2) + p;
  while (p + 4 <= Math.min(blockEnd, records.length)) {
    const type = records.readUInt16BE(p);
    p += 2;
    const length = add(2);
    const next = p + length;
    if (type === 0 || type === 16) {
      add(2);
      const entryHead = type === 0 ? 1 : 0; // server_name entries start with a name_type byte
      while (p + entryHead < next) {
        p += entryHead;
        const entry = add(type === 0 ? 2 : 1);
        if (entry < 0) return fields;
        p += entry;
      }
    }
    p = next;
  }
  return fields;
}
