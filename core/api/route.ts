import type Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';
import { z } from 'zod';
import type { ControlPlane, Principal } from '../auth/index.js';
import type { CallerResolver } from '../plugin/host.js';
import { AppError } from '../errors.js';
import { readJson } from './body.js';
import type { ApiState } from './errors.js';

/** Who may call a route: anyone, any logged-in user, or admins only. */
export type Access = 'public' | 'user' | 'admin';

export type ApiContext = RouterContext<ApiState>;

const EMPTY = z.strictObject({});
type Empty = typeof EMPTY;

/**
 * A route's successful answers for the API document (core/api/openapi.ts): status → the JSON
 * body's schema, `null` for no body (204), `'text'` for a text/plain body.
 */
export type Responses = Readonly<Partial<Record<200 | 201 | 204 | 302, z.ZodType | null | 'text'>>>;

export interface RouteDef<B extends z.ZodType = Empty, Q extends z.ZodType = Empty> {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  access: Access;
  /** One line for the API document. */
  summary?: string;
  /** What it answers; every /v1 route declares it (the OpenAPI document refuses a route without). */
  responses?: Responses;
  /** The JSON body's schema; without one the route takes no body. */
  body?: B;
  /** The query string's schema; without one the route takes no query parameters. */
  query?: Q;
  handle(ctx: ApiContext, input: { body: z.output<B>; query: z.output<Q> }): Promise<void> | void;
}

/** What the API document shows of a route. */
export interface RouteDoc {
  readonly summary: string | undefined;
  readonly body: z.ZodType | undefined;
  readonly query: z.ZodType | undefined;
  readonly responses: Responses | undefined;
}

/** A route with its types erased, for the table every route lives in. */
export interface AnyRoute {
  readonly method: RouteDef['method'];
  readonly path: string;
  readonly access: Access;
  readonly doc: RouteDoc;
  mount(router: Router<ApiState>, guard: (access: Access) => RouterMiddleware<ApiState>): void;
}

/**
 * Declares a route. Every core route is declared this way, so each one states its access
 * (enforced by `guard` before anything else runs) and validates its body and query with a
 * strict schema (unknown fields are refused).
 */
export function route<B extends z.ZodType = Empty, Q extends z.ZodType = Empty>(def: RouteDef<B, Q>): AnyRoute {
  return {
    method: def.method,
    path: def.path,
    access: def.access,
    doc: { summary: def.summary, body: def.body, query: def.query, responses: def.responses },
    mount(router, guard) {
      const handler: RouterMiddleware<ApiState> = async (ctx) => {
        // The hot path (GET /v1/me: no body, no query) skips reading and both schemas; what
        // they would accept there is exactly {} (measured: docs/benchmarks.md, API).
        const bare = ctx.querystring === '' && !hasBody(ctx);
        const rawBody = bare ? undefined : await readJson(ctx);
        const body = bare && !def.body ? {} : parse((def.body ?? EMPTY) as z.ZodType, rawBody ?? (def.body ? undefined : {}), 'body');
        const query = bare && !def.query ? {} : parse((def.query ?? EMPTY) as z.ZodType, { ...ctx.query }, 'query');
        await def.handle(ctx, { body: body as z.output<B>, query: query as z.output<Q> });
      };
      router.register(def.path, [def.method], [guard(def.access), handler]);
    },
  };
}

/** Whether the request announces a body (readJson reads nothing otherwise). */
function hasBody(ctx: ApiContext): boolean {
  return ctx.req.headers['content-length'] !== undefined || ctx.req.headers['transfer-encoding'] !== undefined;
}

function parse(schema: z.ZodType, value: unknown, where: 'body' | 'query'): unknown {
  if (value === undefined) throw new AppError('VALIDATION_FAILED', `${where}: a JSON object is required`);
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.slice(0, 10).map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`);
  throw new AppError('VALIDATION_FAILED', problems.join('; '));
}

/** The caller of a route whose access is `user` or `admin`. */
export function principal(ctx: ApiContext): Principal {
  const p = ctx.state.principal;
  if (!p) throw new AppError('AUTH_REQUIRED', 'log in first');
  return p;
}

/** The client address as the socket saw it (the gateway terminates TLS in-process). */
export function clientIp(ctx: ApiContext): string {
  const ip = ctx.request.ip || ctx.req.socket.remoteAddress || '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  return mapped ?? ip;
}

/** The caller of a valid bearer access token; null when the header is absent, malformed, invalid or expired. */
export async function bearerPrincipal(control: ControlPlane, ctx: ApiContext): Promise<Principal | null> {
  const m = /^Bearer ([\x21-\x7e]{1,200})$/i.exec(ctx.get('authorization'));
  return m?.[1] ? control.tokens.authenticate(m[1]) : null;
}

/** What a plugin route is told about its caller: the token's user (or null: the plugin decides) and the client address. */
export function pluginCaller(control: ControlPlane): CallerResolver<ApiState> {
  return async (ctx) => {
    const p = await bearerPrincipal(control, ctx);
    return { principal: p ? { userId: p.id, username: p.username, role: p.role } : null, ip: clientIp(ctx) };
  };
}

/**
 * Enforces a route's access: a bearer access token for `user` and `admin` (401 without a
 * valid one), the admin role for `admin` (403, audited as authz_fail).
 */
export function accessGuard(control: ControlPlane): (access: Access) => RouterMiddleware<ApiState> {
  return (access) => async (ctx, next) => {
    if (access === 'public') return next();
    const header = ctx.get('authorization');
    const p = await bearerPrincipal(control, ctx);
    if (!p) {
      ctx.set('WWW-Authenticate', 'Bearer realm="hackstream"');
      throw new AppError('AUTH_REQUIRED', header ? 'the access token is invalid or expired' : 'log in first (Authorization: Bearer <access token>)');
    }
    ctx.state.principal = p;
    ctx.state.userId = p.id;
    if (access === 'admin' && p.role !== 'admin') {
      await control.audit.record({
        actor: p.id,
        action: 'authz_fail',
        target: `${ctx.method} ${ctx.path}`,
        sourceIp: clientIp(ctx),
        result: 'failure',
        details: { required: 'admin', role: p.role },
      });
      throw new AppError('FORBIDDEN', 'this needs the admin role');
    }
    return next();
  };
}
