import type { DataSource, EntityManager } from 'typeorm';
import { AUDIT_GENESIS_HASH } from '../store/audit-chain.js';
import { AUDIT_RESULTS, type AuditResult } from '../store/entities.js';
import { canonicalJson, type JsonValue } from './details.js';
import { auditRowHash } from './hash.js';

/*
 * Walks audit_log in id order and checks each row twice: its stored hash against a hash
 * recomputed from its fields (catches an edited field, prev_hash or hash), then its link
 * and id against the row before it (catches removed rows). What a chain alone cannot
 * catch: rows removed from the END (no later row points at them) and a rewrite that
 * recomputes every hash from the edit onwards; an anchor kept elsewhere (the newest hash,
 * which audit sinks receive with each row id) closes both.
 */

export type AuditChainProblem =
  /** The row's fields (or its prev_hash or hash) are not what was written. */
  | 'hash_mismatch'
  /** Rows are missing before this one (ids skip, or the first row is not id 1 / genesis). */
  | 'gap'
  /** The row is intact but does not chain onto the row before it: that row was rewritten and re-hashed, or this one re-linked. */
  | 'broken_link'
  /** A stored value cannot be read back as the audit layer writes it. */
  | 'malformed';

export type AuditChainReport =
  | { ok: true; rows: number; /** Hash of the newest row (AUDIT_GENESIS_HASH when empty): an anchor to keep elsewhere. */ head: string }
  | { ok: false; rowId: string; reason: AuditChainProblem; detail: string; /** Rows checked and found sound before this one. */ rows: number };

const BATCH = 1000;

interface RawRow {
  id: string;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  source_ip: string | null;
  result: AuditResult;
  details: JsonValue;
  prev_hash: string;
  hash: string;
}

/**
 * Checks the whole audit chain in one consistent snapshot (rows appended meanwhile are
 * not seen) and names the first row that is wrong.
 */
export function verifyAuditChain(dataSource: DataSource): Promise<AuditChainReport> {
  return dataSource.transaction('REPEATABLE READ', async (m) => {
    await m.query('SET TRANSACTION READ ONLY');
    return walk(m);
  });
}

async function walk(m: EntityManager): Promise<AuditChainReport> {
  let prev: { id: bigint; hash: string } = { id: 0n, hash: AUDIT_GENESIS_HASH };
  let checked = 0;
  for (;;) {
    const batch = await readBatch(m, prev.id);
    for (const row of batch) {
      const problem = checkRow(row, prev);
      if (problem) return { ok: false, rowId: row.id, ...problem, rows: checked };
      prev = { id: BigInt(row.id), hash: row.hash };
      checked++;
    }
    if (batch.length < BATCH) return { ok: true, rows: checked, head: prev.hash };
  }
}

function checkRow(row: RawRow, prev: { id: bigint; hash: string }): { reason: AuditChainProblem; detail: string } | undefined {
  if (!AUDIT_RESULTS.includes(row.result) || !(row.at instanceof Date) || Number.isNaN(row.at.getTime())) {
    return { reason: 'malformed', detail: 'result or time cannot be read back' };
  }
  const details = row.details !== null && typeof row.details === 'object' && !Array.isArray(row.details) ? canonicalJson(row.details) : null;
  if (details === null) return { reason: 'malformed', detail: 'details is not a JSON object' };
  const fields = { id: row.id, at: row.at, actor: row.actor, action: row.action, target: row.target, sourceIp: row.source_ip, result: row.result, details };
  if (auditRowHash(row.prev_hash, fields) !== row.hash) {
    return { reason: 'hash_mismatch', detail: 'the stored hash does not match the row: a field, prev_hash or hash was changed' };
  }
  const id = BigInt(row.id);
  if (row.prev_hash === prev.hash && id === prev.id + 1n) return undefined;
  if (id !== prev.id + 1n) {
    const missing = id - prev.id - 1n;
    const range = missing === 1n ? `row ${prev.id + 1n} is` : `rows ${prev.id + 1n}–${id - 1n} are`;
    return { reason: 'gap', detail: `${range} missing before this one` };
  }
  const before = prev.id === 0n ? 'the genesis hash' : `the hash of row ${prev.id}`;
  return { reason: 'broken_link', detail: `prev_hash is not ${before}: that row was rewritten and re-hashed, or this row was re-linked` };
}

async function readBatch(m: EntityManager, afterId: bigint): Promise<RawRow[]> {
  // ORDER BY audit_log.id: a bare `id` would name the text alias and sort 10 before 9.
  const rows: unknown = await m.query(
    `SELECT id::text AS id, at, actor, action, target, host(source_ip) AS source_ip, result, details, prev_hash, hash
     FROM audit_log WHERE id > $1 ORDER BY audit_log.id LIMIT ${BATCH}`,
    [afterId.toString()],
  );
  return Array.isArray(rows) ? (rows as RawRow[]) : [];
}
