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

/**
 * Keys generated ahead of need, so issuing a session certificate does not wait for RSA key
 * generation (about 150 ms here; the signature takes about 2 ms). Each key is handed out once.
 * Filling starts at the first `take`, so processes that never issue spend nothing.
 */
export class KeyPool {
  private readonly ready: GeneratedKey[] = [];
  private filling = 0;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly generate: () => Promise<GeneratedKey>,
  ) {}

  async take(): Promise<GeneratedKey> {
    const key = this.ready.shift();
    // The caller's own key is started before the refill, so it is not queued behind it.
    const next = key ? Promise.resolve(key) : this.generate();
    this.refill();
    return next;
  }

  get available(): number {
    return this.ready.length;
  }

  close(): void {
    this.closed = true;
    this.ready.length = 0;
  }

  private refill(): void {
    while (!this.closed && this.ready.length + this.filling < this.size) {
      this.filling++;
      this.generate()
        .then(
          (k) => {
            if (!this.closed) this.ready.push(k);
          },
          () => {}, // a failed background key only means the next take generates its own
        )
        .finally(() => this.filling--);
    }
  }
}
