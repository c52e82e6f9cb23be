import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { AppError } from '../errors.js';
import type { AuditResult } from '../store/entities.js';
import { AUDIT_ACTION_PATTERN } from './actions.js';
import { exportDetails, type JsonObject } from './details.js';
import { escapeAuditText, escapeForExport } from './escape.js';
import { ACTOR_MAX } from './record.js';

export const AUDIT_QUERY_MAX_LIMIT = 500;
export const AUDIT_QUERY_DEFAULT_LIMIT = 100;

const CURSOR_PREFIX = 'a1:';
const ID = /^[1-9][0-9]{0,18}$/;

function decodeCursor(cursor: string): string | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = text.startsWith(CURSOR_PREFIX) ? text.slice(CURSOR_PREFIX.length) : '';
  return ID.test(id) ? id : undefined;
}

function encodeCursor(id: string): string {
  return Buffer.from(CURSOR_PREFIX + id, 'utf8').toString('base64url');
}

const instant = z.union([z.date(), z.iso.datetime({ offset: true }).transform((s) => new Date(s))]);

/**
 * Filters for GET /v1/audit; fits a Koa query object as it comes (limit may be a string).
 * `user` matches rows where that user acted or was acted on (actor or target); the time
 * range is half-open, from ≤ at < to; `cursor` is the nextCursor of the previous page.
 */
export const auditQuerySchema = z
  .strictObject({
    user: z.string().min(1).max(ACTOR_MAX).optional(),
    action: z.string().regex(AUDIT_ACTION_PATTERN, 'not an audit action').optional(),
    from: instant.optional(),
    to: instant.optional(),
    limit: z.coerce.number().int().min(1).max(AUDIT_QUERY_MAX_LIMIT).default(AUDIT_QUERY_DEFAULT_LIMIT),
    cursor: z
      .string()
      .max(64)
      .refine((c) => decodeCursor(c) !== undefined, 'not a cursor from this API')
      .optional(),
  })
  .refine((q) => q.from === undefined || q.to === undefined || q.from.getTime() <= q.to.getTime(), {
    message: 'must not be before from',
    path: ['to'],
  });

export type AuditQueryInput = z.input<typeof auditQuerySchema>;
export type AuditQuery = z.output<typeof auditQuerySchema>;

/** One row as exported: every text field escaped, the time in ISO 8601 UTC. */
export interface AuditExportItem {
  id: string;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  sourceIp: string | null;
  result: AuditResult;
  details: JsonObject;
  prevHash: string;
  hash: string;
}

export interface AuditPage {
  items: AuditExportItem[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

/** Validates query input; a bad one is a VALIDATION_FAILED AppError naming each field. */
export function parseAuditQuery(input: unknown): AuditQuery {
  const parsed = auditQuerySchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'query'}: ${i.message}`);
  throw new AppError('VALIDATION_FAILED', escapeForExport(problems.join('; ')), { cause: parsed.error });
}

/**
 * A page of audit rows, newest first (keyset pagination on id: rows appended while paging
 * never shift a page, so no row is repeated or skipped).
 */
export async function queryAudit(dataSource: DataSource, input: AuditQueryInput): Promise<AuditPage> {
  const q = parseAuditQuery(input);
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => `$${params.push(value)}`;
  if (q.user !== undefined) {
    // Stored text is escaped: compare with the escaped form of what was asked for.
    const user = param(escapeAuditText(q.user, ACTOR_MAX));
    where.push(`(actor = ${user} OR target = ${user})`);
  }
  if (q.action !== undefined) where.push(`action = ${param(q.action)}`);
  if (q.from !== undefined) where.push(`at >= ${param(q.from.toISOString())}`);
  if (q.to !== undefined) where.push(`at < ${param(q.to.toISOString())}`);
  if (q.cursor !== undefined) where.push(`id < ${param(decodeCursor(q.cursor))}::bigint`);
  // ORDER BY audit_log.id: a bare `id` would name the text alias and sort 10 before 9.
  const rows: unknown = await dataSource.query(
    `SELECT id::text AS id, at, actor, action, target, host(source_ip) AS source_ip, result, details, prev_hash, hash
     FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY audit_log.id DESC LIMIT ${param(q.limit + 1)}`,
    params,
  );
  const items = (Array.isArray(rows) ? rows : []).map(toExportItem);
  const more = items.length > q.limit;
  if (more) items.pop();
  const last = items[items.length - 1];
  return { items, nextCursor: more && last ? encodeCursor(last.id) : null };
}

const text = (v: unknown): string => escapeForExport(String(v));
const textOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : text(v));

function toExportItem(raw: unknown): AuditExportItem {
  const r = raw as Record<string, unknown>;
  const at = r.at instanceof Date ? r.at : new Date(String(r.at));
  const details = exportDetails(r.details);
  return {
    id: text(r.id),
    at: at.toISOString(),
    actor: text(r.actor),
    action: text(r.action),
    target: textOrNull(r.target),
    sourceIp: textOrNull(r.source_ip),
    result: r.result === 'success' ? 'success' : 'failure',
    details: details !== null && typeof details === 'object' && !Array.isArray(details) ? details : {},
    prevHash: text(r.prev_hash),
    hash: text(r.hash),
  };
}
