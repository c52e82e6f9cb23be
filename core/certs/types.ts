import type { KeyPair } from '../../lib/tls.js';

export type { AcmeChallengeStore, CertificateSource, KeyPair } from '../../lib/tls.js';

export interface IssuedCert extends KeyPair {
  /** Not-after of the certificate. */
  expiresAt: Date;
}


