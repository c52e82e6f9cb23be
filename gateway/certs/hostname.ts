const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * True for a hostname already in normal form: lowercase LDH labels, no trailing dot, at most
 * 253 characters, not an all-numeric (IPv4-like) name. Certificates are only issued for these,
 * so a caller's typo or an attacker-chosen name never reaches a signature.
 */
export function isCertHostname(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l) => LABEL.test(l)) && !labels.every((l) => /^\d+$/.test(l));
}

export function assertCertHostname(name: string, what: string): void {
  if (!isCertHostname(name)) {
    throw new Error(`${what} ${JSON.stringify(name.slice(0, 300))} is not a hostname (lowercase letters, digits, hyphens and dots, at most 253 characters)`);
  }
}
