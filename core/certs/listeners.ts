import type { Logger } from '../../lib/log.js';
import type { KeyPair } from './types.js';

/** The onChange listeners of a CertificateSource; one that throws is logged and does not stop the others. */
export class PairListeners {
  private readonly listeners = new Set<(pair: KeyPair) => void>();

  constructor(private readonly logger: Logger) {}

  add(listener: (pair: KeyPair) => void): () => void {
    // Wrapped so the same function registered twice gets two independent subscriptions.
    const entry = (pair: KeyPair): void => listener(pair);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  emit(pair: KeyPair): void {
    for (const listener of this.listeners) {
      try {
        listener(pair);
      } catch (err) {
        this.logger.error({ err }, 'certificate change listener failed');
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
