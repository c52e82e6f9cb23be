/*
 * Verifies the audit chain now and then (metrics.auditVerifyIntervalSeconds) and publishes the
 * result as gauges, so an alert fires when a row was changed or removed. One walk of the whole
 * chain per interval: a few seconds per million rows, in a read-only snapshot.
 */
import type { DataSource } from 'typeorm';
import type { Logger } from '../../lib/log.js';
import { verifyAuditChain } from '../audit/verify.js';
import { auditChainRows, auditChainValid, auditChainVerifiedAt } from './registry.js';

export class AuditChainMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /** Verifies at once, then every interval (never when the interval is 0). */
  start(): void {
    if (this.intervalMs <= 0 || this.closed) return;
    void this.verifyNow();
    this.timer = setInterval(() => void this.verifyNow(), this.intervalMs);
    this.timer.unref();
  }

  /** One verification (joins one already running); never rejects: a failed walk is logged and leaves the gauges as they were. */
  verifyNow(): Promise<void> {
    this.running ??= this.verify().finally(() => (this.running = undefined));
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.running;
  }

  private async verify(): Promise<void> {
    try {
      const report = await verifyAuditChain(this.dataSource);
      auditChainValid.set(report.ok ? 1 : 0);
      auditChainRows.set(report.rows);
      auditChainVerifiedAt.set(Date.now() / 1000);
      if (!report.ok) this.log.error({ rowId: report.rowId, reason: report.reason, detail: report.detail }, 'audit chain verification failed');
    } catch (err) {
      if (!this.closed) this.log.warn({ err: (err as Error).message }, 'could not verify the audit chain; will retry');
    }
  }
}
