import { normalizeHostname } from '../../lib/hostname.js';

/**
 * True for a hostname already in normal form (see normalizeHostname): certificates are only
 * issued for these, so a caller's typo or an attacker-chosen name never reaches a signature.
 */
export function isCertHostname(name: string): boolean {
  return normalizeHostname(name) === name;
}

export function assertCertHostname(name: string, what: string): void {
  if (!isCertHostname(name)) {
    throw new Error(`${what} ${JSON.stringify(name.slice(0, 300))} is not a hostname (lowercase letters, digits, hyphens and dots, at most 253 characters)`);
  }
}
