import { createHash } from 'node:crypto';
import type { AuditEntry } from '../store/entities.js';

/*
 * The row hash: SHA-256, lowercase hex, of prev_hash followed by a canonical serialisation
 * of every other stored field. The id is covered too, so renumbering a row breaks it.
 */

/** Bumped if the serialisation ever changes (a verifier then needs both). */
const FORMAT = 'hackstream-audit-v1';

/** The stored fields of one row, in the form they are read back from the database. */
export type HashedFields = Omit<AuditEntry, 'details' | 'prevHash' | 'hash'> & {
  /** canonicalJson(details) */
  details: string;
};

/** A JSON array: fields in a fixed order, each one quoted, so no two rows serialise alike. */
export function serializeAuditFields(f: HashedFields): string {
  return JSON.stringify([FORMAT, f.id, f.at.toISOString(), f.actor, f.action, f.target, f.sourceIp, f.result, f.details]);
}

export function auditRowHash(prevHash: string, fields: HashedFields): string {
  return createHash('sha256').update(prevHash).update(serializeAuditFields(fields)).digest('hex');
}
