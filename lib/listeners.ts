import type { Logger } from './log.js';

/**
 * A set of listeners called in turn: one that throws is logged (with `what`) and does not
 * stop the others. The same function added twice gets two independent subscriptions.
 */
export class Listeners<Args extends unknown[]> {
  private readonly listeners = new Set<(...args: Args) => void>();

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
  ) {}

  /** Returns the unsubscribe function. */
  add(listener: (...args: Args) => void): () => void {
    const entry = (...args: Args): void => listener(...args);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  emit(...args: Args): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(...args);
      } catch (err) {
        this.logger.error({ err: err instanceof Error ? err.message : String(err) }, `${this.what} listener failed`);
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
