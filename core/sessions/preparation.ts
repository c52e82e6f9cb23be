/*
 * Prepares the runtime once (image, network, firewall) before the first container, and turns
 * its failures into the API's errors. A failed preparation is tried again by the next caller.
 */
import type { Logger } from '../../lib/log.js';
import { hostError } from './host-errors.js';
import { RuntimeCallError, RuntimeUnavailableError, type SessionRuntime } from './runtime.js';

/** After a failed background preparation, wait this long before trying again. */
export const PREPARE_RETRY_MS = 30_000;

export class RuntimePreparation {
  private prepared: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly runtime: SessionRuntime,
    private readonly log: Logger,
  ) {}

  close(): void {
    this.closed = true;
  }

  /** Resolves once the runtime is prepared; AppError when it cannot be. */
  ensure(): Promise<void> {
    this.prepared ??= this.runtime.prepare((line) => this.log.info({ progress: line }, 'preparing the session runtime')).catch((err: unknown) => {
      this.prepared = undefined;
      // No engine, or no way to isolate the sessions' network: either way no session can run.
      // The runtime's words (engine address, iptables output) stay in the log under the reference.
      if (err instanceof RuntimeUnavailableError) throw hostError('RUNTIME_UNAVAILABLE', 'start', err, this.log);
      // A missing or unbuildable image is the operator's to fix; the user learns the launch failed.
      if (err instanceof RuntimeCallError) throw hostError('SESSION_START_FAILED', 'start', err, this.log);
      throw err;
    });
    return this.prepared;
  }

  /** Prepares now rather than at the first launch, retrying until it works; never rejects. */
  inBackground(): void {
    if (this.closed) return;
    this.ensure().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message, retryInMs: PREPARE_RETRY_MS }, 'the session runtime is not ready; launches fail until it is');
      setTimeout(() => this.inBackground(), PREPARE_RETRY_MS).unref();
    });
  }
}
