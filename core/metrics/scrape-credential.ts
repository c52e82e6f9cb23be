/*
 * The scrape credential: Prometheus sends `Authorization: Bearer <token>`; the config holds
 * only the token's SHA-256 (metrics.scrapeTokenSha256). A token of 32 random bytes needs no
 * slow hash: nobody can guess it, so a stolen config file gives nothing to brute-force.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/i;

/** A check of an Authorization header against the configured hash; always false without one. */
export function scrapeCredentialCheck(sha256Hex: string | undefined): (authorization: string | undefined) => boolean {
  if (!sha256Hex) return () => false;
  const expected = Buffer.from(sha256Hex, 'hex');
  return (authorization) => {
    const token = authorization ? BEARER.exec(authorization)?.[1] : undefined;
    if (!token) return false;
    // Both sides are 32-byte digests: the comparison takes the same time whatever was sent.
    return timingSafeEqual(createHash('sha256').update(token).digest(), expected);
  };
}
