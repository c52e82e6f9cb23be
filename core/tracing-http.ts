/*
 * One SERVER span per API request (docs/tracing.md), named "<METHOD> <route template>"
 * ("POST /v1/sessions", "GET /v1/sessions/:id"), or the method alone when no route matched.
 * Each request starts a new trace: a `traceparent` a client sends is not trusted (the edge
 * passes client headers through, and a client must not join, or force sampling of, traces).
 *
 * Attributes: method, route template, status code, request id, the answer's error code. Never the path's values, the
 * query string, headers, bodies or the caller's address.
 */
import type Koa from 'koa';
import { SpanStatusCode } from '@opentelemetry/api';
import { ROOT_CONTEXT, SpanKind, traced } from '../lib/tracing.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function requestSpans(): Koa.Middleware {
  return (ctx, next) => {
    const method = METHODS.has(ctx.method) ? ctx.method : '_OTHER';
    return traced(
      method,
      async (span) => {
        try {
          await next();
        } finally {
          const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
          if (typeof route === 'string') {
            span.updateName(`${method} ${route}`);
            span.setAttribute('http.route', route);
          }
          span.setAttribute('http.response.status_code', ctx.status);
          const reqId = (ctx.state as { reqId?: unknown }).reqId;
          if (typeof reqId === 'string') span.setAttribute('hackstream.request_id', reqId);
          const code = errorCode(ctx.body);
          if (code !== undefined) span.setAttribute('hackstream.error_code', code);
          if (ctx.status >= 500) {
            span.setStatus({ code: SpanStatusCode.ERROR });
            span.setAttribute('error.type', String(ctx.status));
          }
        }
      },
      { kind: SpanKind.SERVER, parent: ROOT_CONTEXT, attributes: { 'http.request.method': method } },
    );
  };
}

/** The stable `code` of an error answer (`{"error": {"code": "QUOTA_EXCEEDED"}}`, lib/error-codes.ts). */
function errorCode(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || !('error' in body)) return undefined;
  const e = (body as { error: unknown }).error;
  const code = typeof e === 'object' && e !== null && 'code' in e ? (e as { code: unknown }).code : undefined;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : undefined;
}
