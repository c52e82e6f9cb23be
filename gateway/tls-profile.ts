import { constants } from 'node:crypto';
import type tls from 'node:tls';

/**
 * TLS 1.2 suites of Mozilla's "intermediate" profile without its DHE-RSA ones: every client that
 * profile targets also speaks ECDHE, and finite-field DHE would add DH parameters and handshake
 * cost for nobody. ECDHE key exchange and AEAD only: no CBC (LUCKY13, BEAST), no RSA key
 * exchange (ROBOT; forward secrecy always). Suites exist for both certificate kinds, RSA
 * (self-signed mode) and ECDSA (ACME); OpenSSL offers only those matching the loaded key.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

/** The three TLS 1.3 suites (OpenSSL's default set, named so the profile is explicit). */
export const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;

/** Key-exchange groups, in the profile's order. */
export const ECDH_CURVES = 'X25519:prime256v1:secp384r1';

/**
 * The TLS settings of every server the edge terminates itself (the API host and the ACME
 * TLS-ALPN-01 responder): Mozilla's "intermediate" server-side TLS profile as far as Node
 * expresses it (HSTS is the API's response header; certificate lifetime is core/certs').
 * Session tunnels are not terminated at the edge and are not covered.
 */
export const API_TLS_OPTIONS: Readonly<tls.TlsOptions> = Object.freeze({
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  // Node gives the TLS_* names to the TLS 1.3 suite list and the rest to TLS 1.2's.
  ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':'),
  // The profile lets the client choose: every suite offered is strong, and a client without AES
  // instructions (a Pi Zero) picks ChaCha20, which is several times faster there.
  honorCipherOrder: false,
  ecdhCurve: ECDH_CURVES,
  // Compression (CRIME) is compiled out of Node's OpenSSL and client-initiated renegotiation is
  // only rate-limited by Node; refusing both here does not depend on either default.
  secureOptions: constants.SSL_OP_NO_COMPRESSION | constants.SSL_OP_NO_RENEGOTIATION,
});
