import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import { AppError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';

export interface ApiState {
  reqId: string;
  log: Logger;
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
      ctx.state.log.info({ method: ctx.method, path: ctx.path, status: ctx.status, ms }, 'request');
    }
  };
}

/** Renders every error as `{error: {code, message}}` with its catalogue status; logs unexpected ones once. */
export function errorRenderer(): Koa.Middleware<ApiState> {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new AppError('NOT_FOUND', 'no such endpoint');
    } catch (err) {
      const appErr = isAppError(err) ? err : fromKoaError(err);
      if (appErr.status >= 500) ctx.state.log.error({ err }, 'request failed');
      ctx.status = appErr.status;
      ctx.set(appErr.headers);
      ctx.body = { error: { code: appErr.code, message: appErr.message } };
    }
  };
}

function fromKoaError(err: unknown): AppError {
  const status = typeof err === 'object' && err !== null && 'status' in err ? Number(err.status) : 500;
  if (status === 413) return new AppError('PAYLOAD_TOO_LARGE', 'request body too large', { cause: err });
  if (status === 400) return new AppError('BAD_REQUEST', 'malformed request', { cause: err });
  return new AppError('INTERNAL', 'internal error', { cause: err });
}
