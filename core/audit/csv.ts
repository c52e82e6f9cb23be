import type { DataSource } from 'typeorm';
import { canonicalJson } from './details.js';
import { AUDIT_QUERY_MAX_LIMIT, parseAuditQuery, queryAudit, type AuditExportItem, type AuditQueryInput } from './query.js';

/** Rows one export holds at most (newest first); a longer range is exported in parts by narrowing `from`/`to`. */
export const AUDIT_CSV_MAX_ROWS = 10_000;

export const AUDIT_CSV_COLUMNS = ['id', 'at', 'actor', 'action', 'target', 'source_ip', 'result', 'details', 'prev_hash', 'hash'] as const;

/**
 * One CSV cell (RFC 4180): quoted when it holds a quote, comma or line break. A cell a
 * spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading apostrophe
 * (OWASP "CSV injection"); audit text is already escaped, so no raw line break reaches here.
 */
export function csvCell(value: string | null): string {
  if (value === null) return '';
  const guarded = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(guarded) ? `"${guarded.replace(/"/g, '""')}"` : guarded;
}

function csvRow(i: AuditExportItem): string {
  return [i.id, i.at, i.actor, i.action, i.target, i.sourceIp, i.result, canonicalJson(i.details), i.prevHash, i.hash].map(csvCell).join(',');
}

export interface AuditCsv {
  /** Header line, then one line per row, CRLF-terminated. */
  text: string;
  rows: number;
  /** True when more rows matched than AUDIT_CSV_MAX_ROWS (the newest were kept). */
  truncated: boolean;
}

/**
 * The audit rows the filters of `queryAudit` select (user, action, from, to; limit and cursor
 * are ignored), newest first, as CSV, read `pageSize` rows at a time. Every text field went
 * through the export escape.
 */
export async function auditCsv(dataSource: DataSource, input: AuditQueryInput, maxRows = AUDIT_CSV_MAX_ROWS, pageSize = AUDIT_QUERY_MAX_LIMIT): Promise<AuditCsv> {
  const { limit: _limit, cursor: _cursor, ...filters } = parseAuditQuery({ ...input, limit: AUDIT_QUERY_MAX_LIMIT });
  const lines = [AUDIT_CSV_COLUMNS.join(',')];
  let cursor: string | undefined;
  let truncated = false;
  for (;;) {
    const page = await queryAudit(dataSource, { ...filters, limit: pageSize, ...(cursor ? { cursor } : {}) });
    for (const item of page.items) {
      if (lines.length - 1 >= maxRows) {
        truncated = true;
        break;
      }
      lines.push(csvRow(item));
    }
    if (truncated || !page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return { text: `${lines.join('\r\n')}\r\n`, rows: lines.length - 1, truncated };
}
