/** How long to wait before restarting a child that exited; one per child (one per edge worker). */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** A child that stayed up this long is healthy again: its next restart waits `initialMs`. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000, resetAfterMs: 60_000 };

/**
 * Exponential backoff: 250 ms, 500 ms, 1 s, … up to 30 s, so a child that crashes at start
 * does not spin the CPU the others need, while one crash after a long run restarts at once.
 */
export class Backoff {
  private nextMs: number;

  constructor(private readonly policy: BackoffPolicy = DEFAULT_BACKOFF) {
    this.nextMs = policy.initialMs;
  }

  /** The delay before the next start, given how long the instance that just exited was up. */
  delay(uptimeMs: number): number {
    if (uptimeMs >= this.policy.resetAfterMs) this.nextMs = this.policy.initialMs;
    const delay = this.nextMs;
    this.nextMs = Math.min(delay * 2, this.policy.maxMs);
    return delay;
  }
}
