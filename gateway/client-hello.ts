/**
 * Strict, reassembling TLS ClientHello reader.
 * See ../shared/notes/gateway.md §3 (P1, P2, P5–P7), §4 and §7 for the properties it must have.
 */

export type ClientHelloResult =
  /** More bytes are needed; nothing is wrong yet. */
  | { kind: 'incomplete' }
  /** The bytes are not a TLS handshake record. `http` is true when they look like an HTTP request line. */
  | { kind: 'not-tls'; http: boolean }
  /** A TLS record framing or ClientHello structure error; fail closed. */
  | { kind: 'invalid'; reason: string }
  /** The ClientHello would need more than `maxBytes` buffered bytes. */
  | { kind: 'too-large' }
  | {
      kind: 'ok';
      /** Normalised SNI host_name (ASCII lowercase, one trailing dot stripped, LDH, ≤ 253), or null when absent. */
      serverName: string | null;
      /** ALPN protocol names offered, in order (empty when the extension is absent). */
      alpn: string[];
      /** True when an encrypted_client_hello extension (0xfe0d) is present. */
      ech: boolean;
    };

const RECORD_HEADER = 5;
const MAX_RECORD = 16384;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_ECH = 0xfe0d;
const HTTP_METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'PATCH', 'TRACE', 'PRI'];

// Shared and frozen: the incomplete verdict is returned on nearly every call while a hello trickles in.
const INCOMPLETE: ClientHelloResult = Object.freeze({ kind: 'incomplete' });
const TOO_LARGE: ClientHelloResult = Object.freeze({ kind: 'too-large' });
const invalid = (reason: string): ClientHelloResult => ({ kind: 'invalid', reason });

/**
 * Where the record walk stopped: the records before `pos` are complete and checked. A caller that
 * feeds one growing buffer passes the same scan on every call, so each call only walks the records
 * that arrived since the last one (a drip of 1-byte records then costs O(1) per read, not O(n)).
 */
export interface HelloScan {
  pos: number;
  /** The handshake header bytes collected so far (at most 4). */
  head: number[];
  /** 4 + handshake length, once the handshake header is known; -1 before. */
  need: number;
  /** Handshake bytes announced by the complete records before `pos`. */
  promised: number;
}

export function newHelloScan(): HelloScan {
  return { pos: 0, head: [], need: -1, promised: 0 };
}

/**
 * Reads a ClientHello from the start of `buf`, the whole buffer accumulated so far on a connection.
 * While the hello is incomplete only record headers are walked, so calling it again after every read is
 * cheap. Bytes after the hello (pipelined records) are ignored. ALPN names are decoded as latin1 so that
 * every byte maps to exactly one character and no two different names can compare equal.
 * Never throws.
 */
export function parseClientHello(buf: Buffer, maxBytes: number, scan: HelloScan = newHelloScan()): ClientHelloResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] !== CONTENT_HANDSHAKE) return { kind: 'not-tls', http: looksLikeHttp(buf) };
  const handshake = reassemble(buf, maxBytes, scan);
  if (!Buffer.isBuffer(handshake)) return handshake;
  try {
    return parseBody(new Reader(handshake, 4));
  } catch (err) {
    if (err instanceof Malformed) return invalid(err.message);
    throw err;
  }
}

/** An uppercase token followed by a space, or (with few bytes so far) a prefix of a known method. */
function looksLikeHttp(buf: Buffer): boolean {
  const head = buf.subarray(0, 16).toString('latin1');
  const token = /^[A-Z]*/.exec(head)?.[0] ?? '';
  if (token.length === head.length) return HTTP_METHODS.some((m) => m.startsWith(token));
  return token.length > 0 && head[token.length] === ' ';
}

/**
 * Walks the record headers and returns the complete handshake message (header included), or the verdict
 * when it is not complete yet. The handshake header may itself be split over records (RFC 5246 §6.2.1),
 * so its first four bytes are collected one fragment at a time.
 */
function reassemble(buf: Buffer, maxBytes: number, scan: HelloScan): Buffer | ClientHelloResult {
  // Work on copies; commit to `scan` only past records that are complete, which never change again.
  const head = scan.head.slice();
  let { need, promised, pos } = scan;
  while (pos + RECORD_HEADER <= buf.length) {
    const length = buf.readUInt16BE(pos + 3);
    if (buf[pos] !== CONTENT_HANDSHAKE) return invalid('non-handshake record before the hello ended');
    if (buf[pos + 1] !== 3) return invalid('bad record version');
    if (length === 0 || length > MAX_RECORD) return invalid('bad record length');
    const start = pos + RECORD_HEADER;
    const present = Math.min(length, buf.length - start); // no subarray: this loop must not allocate
    for (let i = start; head.length < 4 && i < start + present; i++) head.push(buf[i] ?? 0);
    if (head.length > 0 && head[0] !== HANDSHAKE_CLIENT_HELLO) return invalid('not a ClientHello');
    if (need < 0 && head.length === 4) need = 4 + (((head[1] ?? 0) << 16) | ((head[2] ?? 0) << 8) | (head[3] ?? 0));
    const before = promised;
    promised += length;
    if (need >= 0 && promised >= need) {
      // The hello ends inside this record; whatever follows it is not ours to judge.
      const end = start + (need - before);
      if (end > maxBytes) return TOO_LARGE;
      if (end > buf.length) return INCOMPLETE;
      return collectHandshake(buf, need);
    }
    if (need >= 0 && start + length + minRecordBytes(need - promised) > maxBytes) return TOO_LARGE;
    if (present < length) break;
    pos = start + length;
    scan.pos = pos;
    scan.need = need;
    scan.promised = promised;
    scan.head = head.slice();
  }
  // Still incomplete, so the hello ends beyond everything buffered.
  return buf.length >= maxBytes ? TOO_LARGE : INCOMPLETE;
}

/** Copies the record payloads into one message; only called once reassemble() has checked every header. */
function collectHandshake(buf: Buffer, need: number): Buffer {
  const out = Buffer.alloc(need);
  for (let pos = 0, got = 0; got < need; ) {
    const length = buf.readUInt16BE(pos + 3);
    got += buf.copy(out, got, pos + RECORD_HEADER, pos + RECORD_HEADER + length);
    pos += RECORD_HEADER + length;
  }
  return out;
}

/** The fewest buffered bytes (payload plus record headers) that can carry `n` more handshake bytes. */
function minRecordBytes(n: number): number {
  return n + RECORD_HEADER * Math.ceil(n / MAX_RECORD);
}

function parseBody(r: Reader): ClientHelloResult {
  r.skip(2 + 32, 'legacy_version and random');
  if (r.vector(1, 'session_id').remaining > 32) throw new Malformed('session_id longer than 32');
  const suites = r.vector(2, 'cipher_suites').remaining;
  if (suites < 2 || suites % 2 !== 0) throw new Malformed('bad cipher_suites length');
  if (r.vector(1, 'compression_methods').remaining < 1) throw new Malformed('no compression methods');
  const result = { kind: 'ok' as const, serverName: null as string | null, alpn: [] as string[], ech: false };
  if (r.remaining === 0) return result; // a hello without an extensions block is legal
  const extensions = r.vector(2, 'extensions');
  r.expectEnd('ClientHello');
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16('extension type');
    const data = extensions.vector(2, 'extension');
    // OpenSSL rejects duplicates, so a router that picked one of them would disagree with the backend (P7).
    if (seen.has(type)) throw new Malformed(`duplicate extension ${type}`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) result.serverName = readServerName(data);
    else if (type === EXT_ALPN) result.alpn = readAlpn(data);
    else if (type === EXT_ECH) result.ech = true;
  }
  return result;
}

/** RFC 6066 §3: exactly one host_name. Unknown name types have no known length format, so they are fatal. */
function readServerName(data: Reader): string {
  const list = data.vector(2, 'server_name_list');
  data.expectEnd('server_name');
  let raw: Buffer | null = null;
  while (list.remaining > 0) {
    if (list.u8('name_type') !== 0) throw new Malformed('unknown server name type');
    if (raw !== null) throw new Malformed('more than one host_name');
    raw = list.vector(2, 'host_name').rest();
  }
  if (raw === null) throw new Malformed('empty server_name_list');
  if (raw.length < 1 || raw.length > 255) throw new Malformed('bad host_name length');
  const name = normalizeServerName(raw);
  // Fail closed: an unusable name must never degrade to "no SNI" and reach a default route (P2, P8).
  if (name === null) throw new Malformed('bad host_name');
  return name;
}

/** RFC 7301 §3.1: a non-empty list of non-empty protocol names. */
function readAlpn(data: Reader): string[] {
  const list = data.vector(2, 'protocol_name_list');
  data.expectEnd('application_layer_protocol_negotiation');
  if (list.remaining === 0) throw new Malformed('empty ALPN list');
  const names: string[] = [];
  while (list.remaining > 0) {
    const name = list.vector(1, 'protocol_name').rest();
    if (name.length === 0) throw new Malformed('empty ALPN protocol name');
    names.push(name.toString('latin1'));
  }
  return names;
}

const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// WHATWG URL treats a host whose last label is a number (decimal or 0x-hex) as IPv4 ("127.1", "0x7f.1");
// IP literals are not allowed in SNI (RFC 6066 §3), and this also keeps such names from aliasing an address.
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;

/**
 * Normalises a raw SNI host_name: ASCII only (high-bit bytes are refused, never folded), ASCII-lowercased,
 * one trailing dot stripped, LDH labels of 1–63 characters, at most 253 characters, not an IPv4 literal.
 * Returns null when the name is unusable.
 */
export function normalizeServerName(raw: Buffer): string | null {
  for (const byte of raw) if (byte >= 0x80) return null;
  let name = raw.toString('latin1').toLowerCase(); // pure ASCII here, so only A–Z change
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return null;
  const labels = name.split('.');
  if (!labels.every((label) => LDH_LABEL.test(label))) return null;
  if (NUMERIC_LABEL.test(labels[labels.length - 1] ?? '')) return null;
  return name;
}

class Malformed extends Error {}

/** A bounds-checked cursor over buf[pos, end); every read past `end` fails with Malformed. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    private pos = 0,
    private readonly end = buf.length,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  skip(n: number, what: string): number {
    if (n > this.remaining) throw new Malformed(`truncated ${what}`);
    this.pos += n;
    return this.pos - n;
  }

  u8(what: string): number {
    return this.buf.readUInt8(this.skip(1, what));
  }

  u16(what: string): number {
    return this.buf.readUInt16BE(this.skip(2, what));
  }

  /** A TLS vector: a 1- or 2-byte length, then that many bytes, returned as their own Reader. */
  vector(lengthBytes: 1 | 2, what: string): Reader {
    const length = lengthBytes === 1 ? this.u8(what) : this.u16(what);
    const start = this.skip(length, what);
    return new Reader(this.buf, start, start + length);
  }

  rest(): Buffer {
    return this.buf.subarray(this.skip(this.remaining, ''), this.end);
  }

  expectEnd(what: string): void {
    if (this.remaining !== 0) throw new Malformed(`trailing bytes after ${what}`);
  }
}
