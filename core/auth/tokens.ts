import { createHash, randomBytes } from 'node:crypto';

/*
 * Opaque bearer tokens: 32 bytes (256 bits) from the CSPRNG, base64url, with a prefix that
 * says what a token is (and lets secret scanners find leaked ones). Only the SHA-256 of a
 * token is ever stored; the raw value exists in the response that hands it out.
 */

export const ACCESS_PREFIX = 'hsa_';
export const REFRESH_PREFIX = 'hsr_';
const BODY = /^[A-Za-z0-9_-]{43}$/;

export function newToken(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** True when `token` has the shape of a token of this kind (checked before any lookup). */
export function isTokenShaped(token: string, prefix: string): boolean {
  return token.startsWith(prefix) && BODY.test(token.slice(prefix.length));
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
