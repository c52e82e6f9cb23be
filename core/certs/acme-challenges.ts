import type { AcmeChallengeStore, KeyPair } from './types.js';

/** TLS-ALPN-01 challenge certs of the orders in progress, by lowercase hostname. */
export class MemoryChallengeStore implements AcmeChallengeStore {
  private readonly pairs = new Map<string, KeyPair>();

  get(hostname: string): KeyPair | undefined {
    return this.pairs.get(hostname.toLowerCase());
  }

  set(hostname: string, pair: KeyPair): void {
    this.pairs.set(hostname.toLowerCase(), pair);
  }

  delete(hostname: string): void {
    this.pairs.delete(hostname.toLowerCase());
  }
}
