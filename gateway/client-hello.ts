/**
 * Strict, reassembling TLS ClientHello reader (contract; implementation pending).
 * See ../shared/notes/gateway.md §4 and §7 for the properties it must have.
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

export function parseClientHello(_buf: Buffer, _maxBytes: number): ClientHelloResult {
  throw new Error('not implemented');
}
