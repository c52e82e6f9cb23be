import { escapeAuditText, escapeForExport } from './escape.js';

/*
 * `details` is free-form context from the caller (a changed field, a reason, a plugin
 * name). Before storing it is reduced to bounded, escaped JSON: strings (keys too) escaped
 * and capped, at most MAX_DEPTH levels and MAX_ENTRIES entries per level, values under
 * secret-looking keys replaced, non-JSON values turned into strings. Its canonical text
 * (sorted keys) is what the row hash covers.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export const DETAIL_STRING_MAX = 1024;
const KEY_MAX = 128;
const MAX_DEPTH = 4;
const MAX_ENTRIES = 50;
/** Canonical JSON larger than this is replaced by a marker: audit rows stay small. */
export const DETAILS_MAX_CHARS = 16 * 1024;

// Keys whose values are never stored, whatever the caller passes (ASVS 16.2.5: no secrets).
const SECRET_KEY = /(password|passwd|secret|token|authorization|cookie|apikey|privatekey)$/;
export const REDACTED = '[redacted]';

function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key.toLowerCase().replace(/[-_]/g, ''));
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function sanitize(value: unknown, depth: number): JsonValue | undefined {
  switch (typeof value) {
    case 'string':
      return escapeAuditText(value, DETAIL_STRING_MAX);
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(value)) return value.slice(0, MAX_ENTRIES).map((v: unknown) => sanitize(v, depth + 1) ?? null);
  if (typeof value === 'object' && isPlainObject(value)) return sanitizeObject(value as Record<string, unknown>, depth + 1);
  return escapeAuditText(String(value), DETAIL_STRING_MAX);
}

function sanitizeObject(obj: Record<string, unknown>, depth: number): JsonObject {
  const out: JsonObject = Object.create(null) as JsonObject;
  for (const [rawKey, raw] of Object.entries(obj).slice(0, MAX_ENTRIES)) {
    const key = escapeAuditText(rawKey, KEY_MAX);
    if (isSecretKey(rawKey)) {
      out[key] = REDACTED;
      continue;
    }
    const v = sanitize(raw, depth);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** JSON with object keys sorted at every level: one text per value, whoever serialises it. */
export function canonicalJson(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] ?? null)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The stored form of `details` and its canonical text. */
export function prepareDetails(details: Record<string, unknown> | undefined): { value: JsonObject; canonical: string } {
  let value = sanitizeObject(details ?? {}, 0);
  let canonical = canonicalJson(value);
  if (canonical.length > DETAILS_MAX_CHARS) {
    value = { truncated: true, chars: canonical.length };
    canonical = canonicalJson(value);
  }
  // Re-parsed so the caller holds exactly what a read of the row returns (a plain object).
  return { value: JSON.parse(canonical) as JsonObject, canonical };
}

/** `details` as exported: every string (keys too) passed through escapeForExport. */
export function exportDetails(value: unknown): JsonValue {
  if (typeof value === 'string') return escapeForExport(value);
  if (Array.isArray(value)) return value.map(exportDetails);
  if (value !== null && typeof value === 'object') {
    const out: JsonObject = {};
    // defineProperty: a key named "__proto__" stays a key instead of setting the prototype.
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, escapeForExport(k), { value: exportDetails(v), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return value;
  return null;
}
