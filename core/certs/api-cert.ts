import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import { PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, readIfExists, writeFileAtomic } from './atomic-file.js';
import { BACKDATE_MS, issuedBy, signServerCert, type Ca } from './ca.js';
import { generateRsaKey } from './keys.js';
import type { KeyPair } from './types.js';
import { namesHost, parseLeaf, parsePrivateKey, summarize } from './x509.js';

const API_CERT_DAYS = 397;
/** A CA-issued API cert is re-issued once fewer than this many days remain. */
export const API_RENEW_BEFORE_MS = 30 * 86_400_000;

export interface ApiCert {
  pair: KeyPair;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * The CA-issued API cert from `api.crt` + `api.key`, re-issued (and rewritten) when missing,
 * broken, from another CA, for another hostname, or due for renewal.
 */
export async function loadOrIssueApiCert(certsDir: string, ca: Ca, publicHost: string, logger: Logger): Promise<ApiCert> {
  const certFile = join(certsDir, 'api.crt');
  const keyFile = join(certsDir, 'api.key');
  const [certPem, keyPem] = await Promise.all([readIfExists(certFile), readIfExists(keyFile)]);
  const reason = certPem === undefined || keyPem === undefined ? 'missing' : staleReason(ca, publicHost, certPem, keyPem);
  if (reason === undefined && certPem !== undefined && keyPem !== undefined) {
    const loaded = { pair: { certPem, keyPem }, ...summarize(parseLeaf(certPem)) };
    logger.info({ file: certFile, serial: loaded.serial, notAfter: loaded.notAfter }, 'API certificate loaded');
    return loaded;
  }
  const issued = await issueApiCert(ca, publicHost);
  await writeFileAtomic(keyFile, issued.pair.keyPem, PRIVATE_FILE_MODE);
  await writeFileAtomic(certFile, issued.pair.certPem, PUBLIC_FILE_MODE);
  logger.info({ file: certFile, reason, publicHost, serial: issued.serial, notAfter: issued.notAfter }, 'API certificate issued');
  return issued;
}

/** Why a stored pair cannot be reused, or undefined when it can. */
function staleReason(ca: Ca, publicHost: string, certPem: string, keyPem: string): string | undefined {
  try {
    const cert = parseLeaf(certPem);
    if (!cert.checkPrivateKey(parsePrivateKey(keyPem))) return 'key mismatch';
    if (!issuedBy(ca, cert)) return 'issued by another CA';
    if (!namesHost(cert, publicHost)) return 'public host changed';
    if (summarize(cert).notAfter.getTime() - Date.now() <= API_RENEW_BEFORE_MS) return 'expiring';
    return undefined;
  } catch (err) {
    return `unreadable: ${(err as Error).message}`;
  }
}

async function issueApiCert(ca: Ca, publicHost: string): Promise<ApiCert> {
  const key = await generateRsaKey(2048);
  const now = Math.floor(Date.now() / 1000) * 1000;
  const notBefore = new Date(now - BACKDATE_MS);
  const notAfter = new Date(now + API_CERT_DAYS * 86_400_000);
  const certPem = signServerCert(ca, { hostname: publicHost, publicKeyPem: key.publicKeyPem, notBefore, notAfter });
  return { pair: { certPem, keyPem: key.privateKeyPem }, ...summarize(parseLeaf(certPem)) };
}
