/*
 * Escaping of user-supplied text before it enters the audit log (ASVS 16.2.5, log
 * injection): a control character, a Unicode format or separator character (bidi
 * overrides, zero-width, U+2028) or a lone surrogate is written as a visible escape, so a
 * username like "a\nFAKE LOG\u001b[31m" cannot start a fake line or recolour a terminal
 * when the log is printed or exported. The backslash itself is escaped on the way in, so
 * the stored text reads back unambiguously.
 */

const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSAFE_OR_BACKSLASH = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const SHORT: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Appended to text cut at its cap. */
export const TRUNCATION_MARK = '…[truncated]';

function escapeChar(ch: string): string {
  const short = SHORT[ch];
  if (short !== undefined) return short;
  const cp = ch.codePointAt(0) ?? 0;
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

function escapeWith(value: string, unsafe: RegExp, max: number): string {
  if (!unsafe.test(value) && value.length <= max) return value;
  const out: string[] = [];
  let length = 0;
  // for…of walks code points: a surrogate pair stays whole, a lone surrogate comes alone.
  for (const ch of value) {
    const piece = unsafe.test(ch) ? escapeChar(ch) : ch;
    if (length + piece.length > max) return cut(out, length, max);
    out.push(piece);
    length += piece.length;
  }
  return out.join('');
}

/** Drops whole pieces (never half an escape or half a pair) until the mark fits within `max`. */
function cut(pieces: string[], length: number, max: number): string {
  let total = length;
  while (pieces.length > 0 && total + TRUNCATION_MARK.length > max) total -= pieces.pop()?.length ?? 0;
  return pieces.join('') + TRUNCATION_MARK;
}

/**
 * The form user-supplied text is stored in: unsafe characters and backslashes escaped
 * (`\n` → `\\n`, ESC → `\\u001b`, `\` → `\\\\`), at most `max` UTF-16 units (cut text ends
 * with TRUNCATION_MARK).
 */
export function escapeAuditText(value: string, max: number): string {
  return escapeWith(value, UNSAFE_OR_BACKSLASH, max);
}

/**
 * The export guard: escapes any unsafe character still present but leaves backslashes
 * alone, so text already stored escaped passes unchanged (idempotent) while a row written
 * around recordAudit (a privileged insert) still cannot inject when exported.
 */
export function escapeForExport(value: string): string {
  return escapeWith(value, UNSAFE, Number.MAX_SAFE_INTEGER);
}

/** True when the text holds nothing that escapeForExport would change. */
export function isExportSafe(value: string): boolean {
  return !UNSAFE.test(value);
}
