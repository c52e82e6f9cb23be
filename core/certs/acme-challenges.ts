import type { AcmeChallengeStore, KeyPair } from './types.js';

export type ChallengeListener = (hostname: string, pair: KeyPair | null) => void;

/**
 * TLS-ALPN-01 challenge certs of the orders in progress, by lowercase hostname. The edge that
 * answers the challenges is another process: it follows the changes through `onChange`.
 */
export class MemoryChallengeStore implements AcmeChallengeStore {
  private readonly pairs = new Map<string, KeyPair>();
  private readonly listeners = new Set<ChallengeListener>();

  get(hostname: string): KeyPair | undefined {
    return this.pairs.get(hostname.toLowerCase());
  }

  set(hostname: string, pair: KeyPair): void {
    this.pairs.set(hostname.toLowerCase(), pair);
    this.notify(hostname.toLowerCase(), pair);
  }

  delete(hostname: string): void {
    if (this.pairs.delete(hostname.toLowerCase())) this.notify(hostname.toLowerCase(), null);
  }

  entries(): Array<[string, KeyPair]> {
    return [...this.pairs];
  }

  onChange(listener: ChallengeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(hostname: string, pair: KeyPair | null): void {
    for (const l of this.listeners) l(hostname, pair);
  }
}
