import { X509Certificate, randomBytes, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import forge from 'node-forge';
import type { Logger } from '../../lib/log.js';
import { PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, readIfExists, writeFileAtomic } from './atomic-file.js';
import { randomSerialHex, signCertificate } from './forge-sign.js';
import { generateRsaKey } from './keys.js';
import { parsePrivateKey, summarize } from './x509.js';

const { pki } = forge;

const CA_YEARS = 10;
/** Certificates start this far in the past so a client whose clock is a little behind accepts them. */
export const BACKDATE_MS = 5 * 60_000;

/** The HackStream CA: it signs the API cert (self-signed mode) and every per-session cert. */
export interface Ca {
  certPem: string;
  serial: string;
  notAfter: Date;
  /** The CA certificate as forge sees it: issuer name and key identifier of every leaf. */
  forgeCert: forge.pki.Certificate;
  x509: X509Certificate;
  key: KeyObject;
}

/** Loads `ca.crt` + `ca.key` from `certsDir`, or creates them when both are missing. */
export async function loadOrCreateCa(certsDir: string, logger: Logger): Promise<Ca> {
  const certFile = join(certsDir, 'ca.crt');
  const keyFile = join(certsDir, 'ca.key');
  const [certPem, keyPem] = await Promise.all([readIfExists(certFile), readIfExists(keyFile)]);
  if (certPem !== undefined && keyPem !== undefined) {
    const ca = parseCa(certPem, keyPem, certFile, keyFile);
    if (ca.notAfter.getTime() < Date.now() + 90 * 86_400_000) {
      logger.warn({ file: certFile, notAfter: ca.notAfter }, 'CA certificate expires soon; delete the certs folder to create a new CA');
    }
    logger.info({ file: certFile, serial: ca.serial }, 'CA loaded');
    return ca;
  }
  // Clients pin the CA: never replace half of it silently.
  if (certPem !== undefined || keyPem !== undefined) {
    const missing = certPem === undefined ? certFile : keyFile;
    throw new Error(`${missing} is missing while its pair exists; restore it, or delete both to create a new CA (clients must then pin the new ca.crt)`);
  }
  const created = await createCa();
  await writeFileAtomic(keyFile, created.keyPem, PRIVATE_FILE_MODE);
  await writeFileAtomic(certFile, created.certPem, PUBLIC_FILE_MODE);
  const ca = parseCa(created.certPem, created.keyPem, certFile, keyFile);
  logger.info({ file: certFile, serial: ca.serial, notAfter: ca.notAfter }, 'CA created');
  return ca;
}

function parseCa(certPem: string, keyPem: string, certFile: string, keyFile: string): Ca {
  let x509: X509Certificate;
  let forgeCert: forge.pki.Certificate;
  try {
    x509 = new X509Certificate(certPem);
    forgeCert = pki.certificateFromPem(certPem);
  } catch (err) {
    throw new Error(`${certFile}: not a PEM RSA certificate`, { cause: err });
  }
  let key: KeyObject;
  try {
    key = parsePrivateKey(keyPem);
  } catch (err) {
    throw new Error(`${keyFile}: ${(err as Error).message}`, { cause: err });
  }
  if (!x509.ca) throw new Error(`${certFile}: not a CA certificate`);
  if (!x509.checkPrivateKey(key)) throw new Error(`${keyFile}: key does not match certificate ${certFile}`);
  const { serial, notAfter } = summarize(x509);
  return { certPem, serial, notAfter, forgeCert, x509, key };
}

async function createCa(): Promise<{ certPem: string; keyPem: string }> {
  const { publicKeyPem, privateKeyPem } = await generateRsaKey(3072);
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = randomSerialHex();
  const now = Date.now();
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + CA_YEARS * 365 * 86_400_000);
  // A per-install suffix keeps two installations' CAs apart in a client's trust store.
  const name = [
    { name: 'commonName', value: `HackStream CA ${randomBytes(4).toString('hex')}` },
    { name: 'organizationName', value: 'HackStream' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signCertificate(cert, parsePrivateKey(privateKeyPem));
  return { certPem: pki.certificateToPem(cert), keyPem: privateKeyPem };
}

export interface ServerCertSpec {
  hostname: string;
  publicKeyPem: string;
  notBefore: Date;
  notAfter: Date;
}

/** A TLS server certificate for one hostname (SAN dNSName, serverAuth), signed by the CA; PEM. */
export function signServerCert(ca: Ca, spec: ServerCertSpec): string {
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(spec.publicKeyPem);
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = spec.notBefore;
  cert.validity.notAfter = spec.notAfter;
  cert.setSubject([{ name: 'commonName', value: spec.hostname }]);
  cert.setIssuer(ca.forgeCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: spec.hostname }] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.forgeCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  signCertificate(cert, ca.key);
  return pki.certificateToPem(cert);
}

/** True when `cert` was signed by this CA (signature checked, not just the issuer name). */
export function issuedBy(ca: Ca, cert: X509Certificate): boolean {
  return cert.checkIssued(ca.x509) && cert.verify(ca.x509.publicKey);
}
