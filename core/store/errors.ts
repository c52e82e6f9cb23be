import { AppError } from '../errors.js';

/*
 * Database errors as callers need them: a unique violation is an answer (409), a lost or
 * unreachable database is a 503 with a generic message, anything else stays as it is.
 */

const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH']);
const UNAVAILABLE_MESSAGES = [
  'timeout exceeded when trying to connect',
  'Connection terminated',
  'Query read timeout',
  'Client has encountered a connection error',
  'Connection is not established',
];

/** The SQLSTATE of a Postgres error (TypeORM's QueryFailedError or pg's own), if any. */
export function pgErrorCode(err: unknown): string | undefined {
  for (const e of causes(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    const driver = (e as { driverError?: unknown }).driverError;
    const dcode = typeof driver === 'object' && driver !== null ? (driver as { code?: unknown }).code : undefined;
    if (typeof dcode === 'string' && /^[0-9A-Z]{5}$/.test(dcode)) return dcode;
  }
  return undefined;
}

export function isUniqueViolation(err: unknown): boolean {
  return pgErrorCode(err) === '23505';
}

/**
 * A row is still referenced (or a reference points nowhere). PostgreSQL 18, which the
 * embedded store runs, reports ON DELETE RESTRICT as 23001; earlier versions as 23503.
 */
export function isForeignKeyViolation(err: unknown): boolean {
  const code = pgErrorCode(err);
  return code === '23503' || code === '23001';
}

/** The database cannot be reached or went away: connection errors, timeouts, shutdown. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const sqlstate = pgErrorCode(err);
  if (sqlstate && (sqlstate.startsWith('08') || ['57P01', '57P02', '57P03', '53300', '57014'].includes(sqlstate))) return true;
  for (const e of causes(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE_ERRNOS.has(code)) return true;
    // TypeORM releases a transaction's connection when it fails; later queries of that
    // transaction get this error (a bug that reuses a finished manager gets it too).
    if (e instanceof Error && e.name === 'QueryRunnerAlreadyReleasedError') return true;
    const message = e instanceof Error ? e.message : '';
    if (UNAVAILABLE_MESSAGES.some((m) => message.includes(m))) return true;
  }
  return false;
}

/** Maps a database error to the error catalogue where it has a meaning there; else returns it unchanged. */
export function mapDatabaseError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  if (isDatabaseUnavailable(err)) return new AppError('SERVICE_UNAVAILABLE', 'the database is unavailable, try again shortly', { cause: err, headers: { 'Retry-After': '5' } });
  if (isUniqueViolation(err)) return new AppError('CONFLICT', 'already exists', { cause: err });
  if (isForeignKeyViolation(err)) return new AppError('CONFLICT', 'still in use, or refers to something missing', { cause: err });
  return err;
}

function* causes(err: unknown): Generator<object> {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === 'object' && e !== null; depth++) {
    yield e;
    e = (e as { cause?: unknown }).cause;
  }
}
