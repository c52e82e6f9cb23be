import type { DataSource } from 'typeorm';
import { auditedTransaction, recordStandaloneAudit, type AuditedTransaction, type AuditEmit, type AuditInput } from '../audit/index.js';

/**
 * The audit as accounts and the API use it: a change and its audit row in one transaction
 * (both kept or neither), or a row alone for events with no change (a failed login, a
 * refused authorization). Committed rows go on to the plugins' audit sinks.
 */
export interface Audit {
  transaction<T>(work: (tx: AuditedTransaction) => Promise<T>): Promise<T>;
  record(entry: AuditInput): Promise<void>;
}

/** `emit` receives each committed row (the plugin host's audit fan-out); it must not throw. */
export function createAudit(dataSource: DataSource, emit?: AuditEmit): Audit {
  return {
    transaction: (work) => auditedTransaction(dataSource, work, emit ? { emit } : {}),
    async record(entry) {
      await recordStandaloneAudit(dataSource, entry, emit);
    },
  };
}

export type { AuditedTransaction, AuditInput };
