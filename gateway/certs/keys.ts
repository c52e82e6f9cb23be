import { generateKeyPair } from 'node:crypto';

export interface GeneratedKey {
  publicKeyPem: string;
  /** PKCS#8 PEM. */
  privateKeyPem: string;
}

const ENCODING = {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
} as const;

const done =
  (resolve: (key: GeneratedKey) => void, reject: (err: Error) => void) =>
  (err: Error | null, publicKeyPem: string, privateKeyPem: string): void => {
    if (err) reject(err);
    else resolve({ publicKeyPem, privateKeyPem });
  };

/** RSA key generated off the event loop by node:crypto (forge's pure-JS keygen takes seconds). */
export function generateRsaKey(bits: 2048 | 3072): Promise<GeneratedKey> {
  return new Promise((resolve, reject) => generateKeyPair('rsa', { modulusLength: bits, ...ENCODING }, done(resolve, reject)));
}

/** ECDSA P-256 key (ACME account and ACME certificate keys: no forge involved there). */
export function generateEcKey(): Promise<GeneratedKey> {
  return new Promise((resolve, reject) => generateKeyPair('ec', { namedCurve: 'P-256', ...ENCODING }, done(resolve, reject)));
}
