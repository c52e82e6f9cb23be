import { randomBytes, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

// Public in forge (x509.js) but missing from @types/node-forge.
declare module 'node-forge' {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace pki {
    function getTBSCertificate(cert: Certificate): asn1.Asn1;
  }
}

const { pki, asn1 } = forge;

/**
 * Signs a forge certificate with SHA-256/RSA. forge builds and encodes the certificate;
 * the RSA operation itself is node:crypto's (native): forge's pure-JS RSA-3072 signature
 * takes ~70 ms of event-loop time, which the gateway cannot spare while it proxies.
 * Mirrors forge's own `cert.sign` step by step.
 */
export function signCertificate(cert: forge.pki.Certificate, issuerKey: KeyObject): void {
  cert.md = forge.md.sha256.create();
  const oid = pki.oids['sha256WithRSAEncryption'];
  if (!oid) throw new Error('forge lacks the sha256WithRSAEncryption OID');
  cert.signatureOid = oid;
  cert.siginfo.algorithmOid = oid;
  cert.tbsCertificate = pki.getTBSCertificate(cert);
  const tbs = Buffer.from(asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.md.update(tbs.toString('binary'));
  cert.signature = sign('sha256', tbs, issuerKey).toString('binary');
}

/**
 * A random positive 128-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, positive), as the
 * minimal DER INTEGER content in hex, which is how forge stores it.
 */
export function randomSerialHex(): string {
  for (;;) {
    const bytes = randomBytes(16);
    // A leading zero octet would make the encoding non-minimal; drawing again is simpler than trimming.
    if (bytes[0] === 0) continue;
    const hex = bytes.toString('hex');
    return (bytes[0] ?? 0) >= 0x80 ? `00${hex}` : hex;
  }
}
