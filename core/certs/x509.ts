import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle, leaf first, each re-encoded as PEM. */
export function splitPemChain(pem: string): string[] {
  return pem.match(PEM_CERT) ?? [];
}

/** Parses the first certificate of a PEM bundle; throws a short reason. */
export function parseLeaf(pem: string): X509Certificate {
  const first = splitPemChain(pem)[0];
  if (!first) throw new Error('no PEM certificate found');
  try {
    return new X509Certificate(first);
  } catch {
    throw new Error('certificate does not parse');
  }
}

export function parsePrivateKey(pem: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new Error('no PEM private key found');
  try {
    return createPrivateKey(pem);
  } catch (err) {
    // An encrypted key asks for a passphrase; say so rather than a bare OpenSSL code.
    const encrypted = /ENCRYPTED/.test(pem) ? ' (encrypted keys are not supported)' : '';
    throw new Error(`private key does not parse${encrypted}`, { cause: err });
  }
}

export interface CertSummary {
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export function summarize(cert: X509Certificate): CertSummary {
  return { serial: cert.serialNumber.toLowerCase(), notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** True when the certificate names `hostname` in a SAN dNSName (no wildcards, no CN fallback). */
export function namesHost(cert: X509Certificate, hostname: string): boolean {
  return cert.checkHost(hostname, { wildcards: false, subject: 'never' }) === hostname;
}
