import type { DataSource, EntityManager } from 'typeorm';
import type { IsolationLevel } from 'typeorm/driver/types/IsolationLevel.js';
import type { AuditEvent } from '../plugin/contract.js';
import type { AuditEntry } from '../store/entities.js';
import { recordAudit, toAuditEvent, type AuditInput } from './record.js';

/** Where committed rows go: `host.audit.emit` (returns at once, never throws). */
export type AuditEmit = (event: AuditEvent) => void;

export interface AuditedTransaction {
  readonly manager: EntityManager;
  /** recordAudit in this transaction; the row reaches `emit` only once the transaction commits. */
  audit(entry: AuditInput): Promise<AuditEntry>;
}

export interface AuditedTransactionOptions {
  emit?: AuditEmit;
  isolation?: IsolationLevel;
}

/**
 * Runs `work` in one transaction and, after it commits, hands every audit row it recorded
 * to `emit` (the after-commit hook: sinks never see a row that rolled back). If `work`
 * throws, or the commit fails, nothing is kept and nothing is emitted.
 */
export async function auditedTransaction<T>(
  dataSource: DataSource,
  work: (tx: AuditedTransaction) => Promise<T>,
  opts: AuditedTransactionOptions = {},
): Promise<T> {
  const rows: AuditEntry[] = [];
  const run = (manager: EntityManager) =>
    work({
      manager,
      async audit(entry) {
        const row = await recordAudit(manager, entry);
        rows.push(row);
        return row;
      },
    });
  const result = opts.isolation ? await dataSource.transaction(opts.isolation, run) : await dataSource.transaction(run);
  emitAll(rows, opts.emit);
  return result;
}

/**
 * One audit row in a transaction of its own, for events that must be kept whatever
 * happens to the request (a failed login, a refused authorization): never record those in
 * a transaction that is about to roll back.
 */
export function recordStandaloneAudit(dataSource: DataSource, entry: AuditInput, emit?: AuditEmit): Promise<AuditEntry> {
  return auditedTransaction(dataSource, (tx) => tx.audit(entry), emit ? { emit } : {});
}

function emitAll(rows: readonly AuditEntry[], emit: AuditEmit | undefined): void {
  if (!emit) return;
  for (const row of rows) {
    try {
      emit(toAuditEvent(row));
    } catch {
      // host.audit.emit never throws; a stand-in that does must not undo a committed change.
    }
  }
}
