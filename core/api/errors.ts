import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { Principal } from '../auth/index.js';
import { AppError, ERRORS, isAppError, type ErrorCode } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import { mapDatabaseError } from '../store/errors.js';

export interface ApiState {
  reqId: string;
  log: Logger;
  /** The authenticated caller, set by the auth middleware of routes that need one. */
  principal?: Principal;
  /**
   * The caller's user id for the request's log line, set wherever a caller is identified:
   * core's access guard and the plugin routes' caller lookup (whose `principal` is the
   * contract's view, `userId` rather than `id`).
   */
  userId?: string;
}

/** Gives each request an id and a child logger, and logs one line when it ends. */
export function requestContext(logger: Logger): Koa.Middleware<ApiState> {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    ctx.state.reqId = /^[A-Za-z0-9-]{8,64}$/.test(incoming) ? incoming : randomUUID();
    ctx.state.log = logger.child({ reqId: ctx.state.reqId });
    ctx.set('x-request-id', ctx.state.reqId);
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const userId = ctx.state.userId;
      ctx.state.log.info({ method: ctx.method, path: ctx.path, status: ctx.status, ms, ...(userId ? { userId } : {}) }, 'request');
    }
  };
}

/** Codes for statuses Koa or the router set without a body (405 from allowedMethods…). */
const BY_STATUS: Partial<Record<number, ErrorCode>> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  501: 'NOT_IMPLEMENTED',
};

const MESSAGES: Partial<Record<ErrorCode, string>> = {
  NOT_FOUND: 'no such endpoint',
  METHOD_NOT_ALLOWED: 'method not allowed on this endpoint',
  NOT_IMPLEMENTED: 'unknown method',
};

/** Renders every error as `{error: {code, message, details?}}` with its catalogue status; logs unexpected ones once. */
export function errorRenderer(): Koa.Middleware<ApiState> {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.body === undefined || ctx.body === null) {
        const code = ctx.status >= 400 ? BY_STATUS[ctx.status] : undefined;
        if (code) throw new AppError(code, MESSAGES[code] ?? code.toLowerCase().replaceAll('_', ' '));
      }
    } catch (err) {
      // A lost database is a 503 and a unique violation a 409, wherever they surface.
      const mapped = mapDatabaseError(err);
      const appErr = isAppError(mapped) ? mapped : fromKoaError(err);
      // A host failure's reference (core/sessions/host-errors.ts) is what the user tells the operator.
      const reference = appErr.details?.reference;
      if (appErr.status >= 500) ctx.state.log.error({ error: describeError(err), code: appErr.code, ...(reference !== undefined ? { reference } : {}) }, 'request failed');
      ctx.status = appErr.status;
      ctx.set(appErr.headers);
      ctx.body = { error: { code: appErr.code, message: appErr.message, ...(appErr.details ? { details: appErr.details } : {}) } };
    }
  };
}

function fromKoaError(err: unknown): AppError {
  const status = typeof err === 'object' && err !== null && 'status' in err ? Number(err.status) : 500;
  if (status === 413) return new AppError('PAYLOAD_TOO_LARGE', 'request body too large', { cause: err });
  if (status === 400) return new AppError('BAD_REQUEST', 'malformed request', { cause: err });
  const code = BY_STATUS[status];
  if (code && ERRORS[code] === status) return new AppError(code, MESSAGES[code] ?? 'request refused', { cause: err });
  return new AppError('INTERNAL', 'internal error', { cause: err });
}

/**
 * An error as it may be logged: name, message, code and stack along its cause chain, and
 * nothing else. Library errors carry more (TypeORM's QueryFailedError holds the query's
 * parameters: password and token hashes), so they never reach the log whole.
 */
export function describeError(err: unknown, depth = 0): Record<string, unknown> | string {
  if (!(err instanceof Error)) return String(err).slice(0, 500);
  const code = (err as { code?: unknown }).code;
  return {
    type: err.name,
    message: err.message.slice(0, 1_000),
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    ...(err.stack ? { stack: err.stack.slice(0, 4_000) } : {}),
    ...(err.cause !== undefined && depth < 3 ? { cause: describeError(err.cause, depth + 1) } : {}),
  };
}
