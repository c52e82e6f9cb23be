import { isIP } from 'node:net';

/*
 * The PROXY protocol header (HAProxy's spec, "proxy-protocol.txt"), version 2 (binary) and
 * version 1 (text), as a load balancer in front of the edge sends it first on each connection.
 * Parsed incrementally from the bytes read so far; strict and fail-closed; never throws.
 */

/** 12-byte signature that starts every version 2 header. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Version 1's longest line, CRLF included (spec §2.1). */
export const V1_MAX_LENGTH = 107;
/**
 * The longest version 2 address block + TLVs we accept. HAProxy's own TLVs (authority, unique id,
 * SSL details) stay far below it; the spec's 16-bit field allows 65535, which no sender needs.
 */
export const V2_MAX_PAYLOAD = 4096;

/** The client as the proxy saw it. */
export interface ProxiedSource {
  /** IPv4 dotted quad, or IPv6 in RFC 5952 form (IPv4-mapped IPv6 is given as IPv4). */
  address: string;
  port: number;
}

export type ProxyHeaderResult =
  /** `length` header bytes; `source` null: use the connection's own address (LOCAL, UNSPEC, UNIX, UNKNOWN). */
  | { kind: 'ok'; version: 1 | 2; length: number; source: ProxiedSource | null }
  /** A prefix of a header: read more. */
  | { kind: 'incomplete' }
  /** The bytes cannot start a PROXY header (a peer that sent none). */
  | { kind: 'missing' }
  | { kind: 'invalid'; reason: string };

const INCOMPLETE: ProxyHeaderResult = { kind: 'incomplete' };
const MISSING: ProxyHeaderResult = { kind: 'missing' };
const invalid = (reason: string): ProxyHeaderResult => ({ kind: 'invalid', reason });

/** Whether `buf` is a prefix of `of`, or starts with it. */
function matchesPrefix(buf: Buffer, of: Buffer): boolean {
  const n = Math.min(buf.length, of.length);
  return buf.subarray(0, n).equals(of.subarray(0, n));
}

/** Parses the PROXY header (version 2 or 1) at the start of `buf`. */
export function parseProxyHeader(buf: Buffer): ProxyHeaderResult {
  if (buf.length === 0) return INCOMPLETE;
  if (matchesPrefix(buf, V2_SIGNATURE)) return buf.length < 16 ? INCOMPLETE : parseV2(buf);
  if (matchesPrefix(buf, V1_PREFIX)) return parseV1(buf);
  return MISSING;
}

/** Whether the bytes so far start like a PROXY header of either version (for counting refusals). */
export function looksLikeProxyHeader(buf: Buffer): boolean {
  return buf.length >= 5 && (matchesPrefix(buf, V2_SIGNATURE) || matchesPrefix(buf, V1_PREFIX));
}

function parseV2(buf: Buffer): ProxyHeaderResult {
  const verCmd = buf[12] as number;
  const famProto = buf[13] as number;
  const payload = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return invalid('version');
  const command = verCmd & 0x0f;
  if (command > 1) return invalid('command');
  if (payload > V2_MAX_PAYLOAD) return invalid('too long');
  const length = 16 + payload;
  if (buf.length < length) return INCOMPLETE;
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > 3 || transport > 2) return invalid('family');
  // LOCAL: the proxy's own connection (health checks); the block is skipped unread.
  if (command === 0) return { kind: 'ok', version: 2, length, source: null };
  if (family === 0) return { kind: 'ok', version: 2, length, source: null };
  if (transport !== 1) return invalid('not a stream');
  const block = family === 1 ? 12 : family === 2 ? 36 : 216;
  if (payload < block) return invalid('short address block');
  if (!tlvsFit(buf, 16 + block, length)) return invalid('tlv');
  if (family === 3) return { kind: 'ok', version: 2, length, source: null };
  const source =
    family === 1
      ? { address: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`, port: buf.readUInt16BE(24) }
      : { address: formatIpv6(buf.subarray(16, 32)), port: buf.readUInt16BE(48) };
  return { kind: 'ok', version: 2, length, source };
}

/** TLVs (type, 16-bit length, value) exactly fill `[from, to)`. */
function tlvsFit(buf: Buffer, from: number, to: number): boolean {
  let at = from;
  while (at < to) {
    if (to - at < 3) return false;
    at += 3 + buf.readUInt16BE(at + 1);
  }
  return at === to;
}

function parseV1(buf: Buffer): ProxyHeaderResult {
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  let cr = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const b = buf[i] as number;
    if (b === 0x0d) {
      cr = i;
      break;
    }
    // Printable ASCII only (the spec's line is US-ASCII; no NUL, no LF alone, no bytes ≥ 0x80).
    if (b < 0x20 || b > 0x7e) return invalid('v1 bytes');
  }
  if (cr < 0) return buf.length >= V1_MAX_LENGTH ? invalid('v1 too long') : INCOMPLETE;
  if (cr + 1 >= buf.length) return INCOMPLETE;
  if (buf[cr + 1] !== 0x0a) return invalid('v1 line end');
  const length = cr + 2;
  const fields = buf.toString('latin1', V1_PREFIX.length, cr).split(' ');
  if (fields[0] === 'UNKNOWN') return { kind: 'ok', version: 1, length, source: null };
  if (fields.length !== 5) return invalid('v1 fields');
  const [proto, src = '', dst = '', sport = '', dport = ''] = fields;
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (family === 0) return invalid('v1 protocol');
  if (isIP(src) !== family || isIP(dst) !== family) return invalid('v1 address');
  const port = v1Port(sport);
  if (port < 0 || v1Port(dport) < 0) return invalid('v1 port');
  return { kind: 'ok', version: 1, length, source: { address: family === 4 ? src : canonicalIpv6(src), port } };
}

/** A decimal port without leading zeros, or -1. */
function v1Port(s: string): number {
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

/** The 16 bytes of an IPv6 address of a valid textual one. */
export function ipv6Bytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  const groups = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').flatMap((p) => {
          if (!p.includes('.')) return [parseInt(p, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = p.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head = '', tail] = text.split('::');
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** A valid IPv6 address in RFC 5952 form (IPv4-mapped as IPv4). */
export function canonicalIpv6(text: string): string {
  return formatIpv6(ipv6Bytes(text));
}

/**
 * 16 bytes → RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero
 * groups (the first of equals) as `::`. IPv4-mapped (::ffff:a.b.c.d) is returned as plain IPv4.
 */
export function formatIpv6(bytes: Buffer): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  const g = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

/** Builds a version 2 header (PROXY, TCP) for `source` → `destination`; for tests and tools. */
export function buildProxyV2(source: ProxiedSource, destination: ProxiedSource, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const v6 = isIP(source.address) === 6 || isIP(destination.address) === 6;
  const addr = (a: string) => (v6 ? ipv6Bytes(isIP(a) === 4 ? `::ffff:${a}` : a) : Buffer.from(a.split('.').map(Number)));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(source.port, 0);
  ports.writeUInt16BE(destination.port, 2);
  const body = Buffer.concat([addr(source.address), addr(destination.address), ports, tlvs]);
  const head = Buffer.alloc(4);
  head[0] = 0x21;
  head[1] = v6 ? 0x21 : 0x11;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, body]);
}
