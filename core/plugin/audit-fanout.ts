import type { Logger } from '../../lib/log.js';
import { auditSinkDropped, pluginErrors } from '../metrics/registry.js';
import type { AuditEvent, AuditSink } from './contract.js';
import type { Owned } from './registrations.js';
import { withTimeout } from './timeout.js';

export interface AuditLimits {
  /** Events waiting per sink; beyond it new events are dropped for that sink. */
  readonly queueMax: number;
  /** One write that takes longer is abandoned (logged) and the next event goes. */
  readonly writeTimeoutMs: number;
}

export interface HostAudit {
  /** Hands a committed audit row to every sink; returns at once, never throws. */
  emit(event: AuditEvent): void;
}

/** One sink's queue: events are written one at a time, in order, off the caller's path. */
class SinkQueue {
  private readonly queue: AuditEvent[] = [];
  private running = false;
  private dropped = 0;
  private pumped: Promise<void> = Promise.resolve();

  constructor(
    private readonly sink: Owned<AuditSink>,
    private readonly logger: Logger,
    private readonly limits: AuditLimits,
  ) {}

  push(event: AuditEvent): void {
    if (this.queue.length >= this.limits.queueMax) {
      auditSinkDropped.inc({ plugin: this.sink.plugin });
      if (this.dropped++ === 0) this.logger.warn({ plugin: this.sink.plugin }, 'audit sink queue full; dropping events');
      return;
    }
    this.queue.push(event);
    if (!this.running) this.pumped = this.pump();
  }

  /** Resolves when the queue is empty. */
  idle(): Promise<void> {
    return this.pumped;
  }

  private async pump(): Promise<void> {
    this.running = true;
    for (let event = this.queue.shift(); event; event = this.queue.shift()) {
      const current = event;
      try {
        await withTimeout(this.limits.writeTimeoutMs, () => this.sink.value.write(current));
      } catch (err) {
        this.logger.error({ err, plugin: this.sink.plugin, auditId: current.id }, 'audit sink write failed');
        pluginErrors.inc({ plugin: this.sink.plugin, extension: 'audit_sink' });
      }
    }
    // Set in the same synchronous step as the emptiness check, so no push can slip between.
    this.running = false;
    if (this.dropped > 0) {
      this.logger.warn({ plugin: this.sink.plugin, dropped: this.dropped }, 'audit sink dropped events');
      this.dropped = 0;
    }
  }
}

export function createAuditFanout(
  sinks: readonly Owned<AuditSink>[],
  logger: Logger,
  limits: AuditLimits,
): HostAudit & { drain(ms: number): Promise<void> } {
  const queues = sinks.map((s) => new SinkQueue(s, logger, limits));
  let closed = false;
  return {
    emit(event) {
      if (closed) return;
      const frozen = Object.freeze({ ...event });
      for (const q of queues) q.push(frozen);
    },
    /** Stops accepting events and waits (at most `ms`) for queued ones to be written. */
    async drain(ms) {
      closed = true;
      await withTimeout(ms, () => Promise.all(queues.map((q) => q.idle()))).catch(() => {
        logger.warn({ ms }, 'audit sinks did not drain before shutdown');
      });
    },
  };
}
