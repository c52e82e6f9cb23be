import type { DataSource } from 'typeorm';
import { AUDIT_ACTION_PATTERN } from '../audit/actions.js';
import type { AuditService } from '../plugin/contract.js';
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

/**
 * The audit as plugins write it: a row alone, the action checked against the audit's
 * pattern. The host gives each plugin a wrapper that also requires its own prefix.
 */
export function pluginAuditService(audit: Audit): AuditService {
  return {
    async record(entry) {
      const action = entry.action;
      if (!AUDIT_ACTION_PATTERN.test(action) || !isPluginAction(action)) throw new TypeError(`audit action ${JSON.stringify(action)} must be "<plugin>.<event>" matching ${AUDIT_ACTION_PATTERN}`);
      await audit.record({ actor: entry.actor, action, target: entry.target, sourceIp: entry.ip, result: entry.result, details: { ...entry.details } });
    },
  };
}

function isPluginAction(action: string): action is `${string}.${string}` {
  return /^[a-z][a-z0-9_]*\.[a-z0-9_.:]+$/.test(action);
}

export type { AuditedTransaction, AuditInput };
