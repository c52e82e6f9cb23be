import type { EntityManager } from 'typeorm';

/** prev_hash of the first audit row. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

const AUDIT_CHAIN_LOCK_KEY = 0x48534131; // "HSA1"

/**
 * Serialises audit appends and returns the hash the next row must chain onto (the newest
 * row's hash, or AUDIT_GENESIS_HASH). Call it inside the transaction that inserts the row:
 * the lock is held until that transaction ends, so concurrent appends cannot both chain
 * onto the same row (audit_log.prev_hash is unique, which would fail the second one).
 */
export async function lockAuditChain(manager: EntityManager): Promise<string> {
  if (!manager.queryRunner?.isTransactionActive) throw new Error('lockAuditChain must run inside a transaction');
  await manager.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_CHAIN_LOCK_KEY]);
  const rows: unknown = await manager.query('SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1');
  const first: unknown = Array.isArray(rows) ? rows[0] : undefined;
  if (first === undefined) return AUDIT_GENESIS_HASH;
  const hash = (first as { hash?: unknown }).hash;
  if (typeof hash !== 'string') throw new Error('audit_log: unexpected row shape');
  return hash;
}
