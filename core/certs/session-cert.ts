import { BACKDATE_MS, signServerCert, type Ca } from './ca.js';
import { assertCertHostname } from './hostname.js';
import { generateRsaKey, type GeneratedKey } from './keys.js';
import type { IssuedCert } from './types.js';

/** X.509 times have whole seconds; expiresAt matches what the certificate says. */
const toSecond = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);

/**
 * Issues a short-lived certificate for a session hostname, signed by the HackStream CA, with a
 * fresh RSA-2048 key (RSA because forge builds the certificate, and forge only knows RSA keys).
 * The key never touches the disk; the session's xpra server is its only holder.
 */
export async function issueSessionCert(
  ca: Ca,
  hostname: string,
  ttlHours: number,
  newKey: () => Promise<GeneratedKey> = () => generateRsaKey(2048),
): Promise<IssuedCert> {
  assertCertHostname(hostname, 'session hostname');
  if (!Number.isFinite(ttlHours) || ttlHours <= 0) throw new Error(`session certificate lifetime must be positive, got ${ttlHours} h`);
  const key = await newKey();
  const now = Date.now();
  const notAfter = toSecond(now + ttlHours * 3_600_000);
  const certPem = signServerCert(ca, {
    hostname,
    publicKeyPem: key.publicKeyPem,
    notBefore: toSecond(now - BACKDATE_MS),
    notAfter,
  });
  return { certPem, keyPem: key.privateKeyPem, expiresAt: notAfter };
}
