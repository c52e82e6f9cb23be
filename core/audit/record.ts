import { isIP } from 'node:net';
import type { EntityManager } from 'typeorm';
import type { AuditEvent } from '../plugin/contract.js';
import { lockAuditChain } from '../store/audit-chain.js';
import { AUDIT_RESULTS, type AuditEntry, type AuditResult } from '../store/entities.js';
import { AUDIT_ACTION_PATTERN, type AuditAction } from './actions.js';
import { prepareDetails } from './details.js';
import { escapeAuditText } from './escape.js';
import { auditRowHash } from './hash.js';

/** The actor stored when the caller passes null (nobody authenticated, e.g. a failed login). */
export const ANONYMOUS_ACTOR = 'anonymous';
/** audit_log.actor holds at most 256 characters (a CHECK constraint). */
export const ACTOR_MAX = 256;
export const TARGET_MAX = 512;

/** What happened, as the caller describes it. Strings may hold anything: they are escaped. */
export interface AuditInput {
  /** User id of who acted, "system", or a plugin name; null for anonymous. */
  actor: string | null;
  /** Core's own actions, or a plugin's `<plugin name>.<event>` (AUDIT_ACTION_PATTERN). */
  action: AuditAction | `${string}.${string}`;
  /** What was acted on: a user id, a username that was tried, a session id… */
  target?: string | null;
  /** The client's address; anything that is not an IP address is kept in details instead. */
  sourceIp?: string | null;
  result: AuditResult;
  /** Extra context; reduced to bounded, escaped JSON, secret-looking keys redacted. */
  details?: Record<string, unknown>;
}

/**
 * Appends one audit row inside the caller's transaction and returns it as stored. The row
 * commits or rolls back with the change it records. Takes the audit chain lock, held until
 * that transaction ends: call it as the LAST statement of the transaction, so concurrent
 * writers queue for as short a time as possible and never wait on row locks while holding
 * it. recordAudit must be the only writer of audit_log: it numbers rows itself
 * (gapless ids, which is how a verifier tells a deleted row from a rolled-back one).
 */
export async function recordAudit(manager: EntityManager, entry: AuditInput): Promise<AuditEntry> {
  if (!AUDIT_ACTION_PATTERN.test(entry.action)) throw new Error(`audit: action "${escapeAuditText(String(entry.action), 80)}" has the wrong shape`);
  if (!AUDIT_RESULTS.includes(entry.result)) throw new Error(`audit: result must be success or failure`);
  const actor = entry.actor === null || entry.actor === '' ? ANONYMOUS_ACTOR : escapeAuditText(entry.actor, ACTOR_MAX);
  const target = entry.target == null ? null : escapeAuditText(entry.target, TARGET_MAX);
  const ip = normalizeIp(entry.sourceIp);
  const rawDetails = ip.invalid === undefined ? entry.details : { ...entry.details, invalidSourceIp: ip.invalid };
  const details = prepareDetails(rawDetails);

  const prevHash = await lockAuditChain(manager);
  const next = await nextRowFields(manager, ip.value);
  const fields = { id: next.id, at: next.at, actor, action: entry.action, target, sourceIp: next.ip, result: entry.result, details: details.canonical };
  const hash = auditRowHash(prevHash, fields);
  await manager.query(
    `INSERT INTO audit_log (id, at, actor, action, target, source_ip, result, details, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6::inet, $7, $8::jsonb, $9, $10)`,
    [fields.id, fields.at.toISOString(), actor, entry.action, target, fields.sourceIp, entry.result, details.canonical, prevHash, hash],
  );
  return { ...fields, details: details.value, prevHash, hash };
}

/**
 * Under the chain lock: the next id (the newest + 1), the time (the database's clock, cut
 * to milliseconds so a JS Date holds it exactly) and the address in Postgres's own text
 * form, so the hash covers exactly what a later read returns.
 */
async function nextRowFields(manager: EntityManager, ip: string | null): Promise<{ id: string; at: Date; ip: string | null }> {
  const rows: unknown = await manager.query(
    `SELECT (SELECT COALESCE(max(id), 0) + 1 FROM audit_log)::text AS id,
            date_trunc('milliseconds', clock_timestamp()) AS at,
            host($1::inet) AS ip`,
    [ip],
  );
  const row: unknown = Array.isArray(rows) ? rows[0] : undefined;
  const { id, at, ip: host } = (row ?? {}) as { id?: unknown; at?: unknown; ip?: unknown };
  if (typeof id !== 'string' || !(at instanceof Date) || (host !== null && typeof host !== 'string')) {
    throw new Error('audit: unexpected answer from the database');
  }
  return { id, at, ip: host };
}

/** A plain IP address (IPv4-mapped IPv6 as IPv4, no zone), or null plus what was not one (raw: escape before use). */
export function normalizeIp(raw: string | null | undefined): { value: string | null; invalid?: string } {
  if (raw == null || raw === '') return { value: null };
  let ip = raw.trim();
  const zone = ip.indexOf('%');
  if (zone >= 0 && isIP(ip) === 6) ip = ip.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped?.[1] !== undefined && isIP(mapped[1]) === 4) ip = mapped[1];
  if (isIP(ip) === 0) return { value: null, invalid: raw.slice(0, 256) };
  return { value: ip };
}

/** A committed row as audit sinks receive it (`host.audit.emit`). */
export function toAuditEvent(row: AuditEntry): AuditEvent {
  return {
    id: row.id,
    at: row.at.toISOString(),
    actor: row.actor === ANONYMOUS_ACTOR ? null : row.actor,
    action: row.action,
    target: row.target,
    ip: row.sourceIp,
    result: row.result,
  };
}
