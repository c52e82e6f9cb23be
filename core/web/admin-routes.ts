import type { DataSource } from 'typeorm';
import { z } from 'zod';
import type { ControlPlane, Principal } from '../auth/index.js';
import { auditPageToWire, userPageToWire } from '../api/schemas.js';
import { auditCsv, auditQuerySchema, queryAudit, verifyAuditChain } from '../audit/index.js';
import { AppError } from '../errors.js';
import type Router from '@koa/router';
import type { RouterMiddleware } from '@koa/router';
import type { ApiState } from '../api/errors.js';
import { clientIp, principal, route, type AnyRoute, type ApiContext } from '../api/route.js';
import { changeUser, createUser, createUserBody, patchUserBody } from '../api/routes/users.js';
import type { SessionManager } from '../sessions/manager.js';
import type { SessionView } from '../sessions/view.js';
import { checkCsrf, cookieAuth } from './cookie-auth.js';

/*
 * The admin console's JSON API under /web/api/admin: the portal's cookie, CSRF checks on every
 * POST, and the same services as /v1 (users, sessions, audit). Anyone who is not a signed-in
 * admin gets exactly what an unknown path gets (404 NOT_FOUND "no such endpoint"), so the
 * console does not reveal that it exists; a signed-in non-admin's try is audited (authz_fail).
 */

export interface AdminDeps {
  control: ControlPlane;
  sessions?: SessionManager;
  dataSource?: DataSource;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What a non-admin gets: the router's own answer to a path that does not exist. */
export function hidden(): AppError {
  return new AppError('NOT_FOUND', 'no such endpoint');
}

/** The cookie's admin, or the unknown-path 404 (audited when a signed-in non-admin asked). */
export function adminGate(control: ControlPlane): (ctx: ApiContext) => Promise<Principal> {
  const who = cookieAuth(control);
  return async (ctx) => {
    const p = await who(ctx).catch(() => null);
    if (!p) throw hidden();
    ctx.state.principal = p;
    ctx.state.userId = p.id;
    if (p.role !== 'admin') {
      await control.audit.record({
        actor: p.id,
        action: 'authz_fail',
        target: `${ctx.method} ${ctx.path}`.slice(0, 512),
        sourceIp: clientIp(ctx),
        result: 'failure',
        details: { required: 'admin', role: p.role, via: 'admin console' },
      });
      throw hidden();
    }
    return p;
  };
}

const usersQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(200),
  cursor: z.string().min(1).max(200).optional(),
});

/** The audit filters of /v1/audit; `user` may also be a username (the console's field). */
const auditFilters = auditQuerySchema;

/** An admin's session row: the owner's name and whether a client (xpra or a browser tab) is attached. */
export interface AdminSessionView extends SessionView {
  username: string | null;
  client_connected: boolean;
}

/**
 * Mounts the console's API on the web router: each route's guard is the admin gate, so a
 * non-admin is answered 404 before its body, query or CSRF header is even looked at.
 */
export function mountAdminApi(router: Router<ApiState>, deps: AdminDeps): void {
  const gate = adminGate(deps.control);
  const guard: RouterMiddleware<ApiState> = async (ctx, next) => {
    await gate(ctx);
    return next();
  };
  for (const r of adminApi(deps)) r.mount(router, () => guard);
}

export function adminApi(deps: AdminDeps): AnyRoute[] {
  const { control } = deps;
  const actorOf = (ctx: ApiContext, p: Principal) => ({ id: p.id, ip: clientIp(ctx) });
  /** The admin behind a console request that changes something, once its CSRF token checks out. */
  const changer = (ctx: ApiContext): Principal => {
    checkCsrf(ctx);
    return principal(ctx);
  };
  const needSessions = (): SessionManager => {
    if (!deps.sessions) throw new AppError('NOT_FOUND', 'sessions are not enabled');
    return deps.sessions;
  };
  const needDb = (): DataSource => {
    if (!deps.dataSource) throw new AppError('NOT_FOUND', 'the audit is not available here');
    return deps.dataSource;
  };
  const userId = async (raw: string | undefined): Promise<string> => {
    const id = String(raw ?? '').toLowerCase();
    if (!UUID.test(id) || !(await control.users.findById(id))) throw new AppError('NOT_FOUND', 'no such user');
    return id;
  };
  /** A username in the user filter becomes that user's id (audit rows name users by id). */
  const auditQuery = async <T extends { user?: string | undefined }>(q: T): Promise<T> => {
    if (q.user === undefined || UUID.test(q.user)) return q;
    const u = await control.users.findByUsername(q.user);
    return u ? { ...q, user: u.id } : q;
  };
  return [
    route({
      method: 'GET',
      path: '/web/api/admin/users',
      access: 'public',
      query: usersQuery,
      async handle(ctx, { query }) {
        ctx.body = userPageToWire(await control.users.list({ limit: query.limit, cursor: query.cursor }));
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/admin/users',
      access: 'public',
      body: createUserBody,
      async handle(ctx, { body }) {
        const p = changer(ctx);
        ctx.status = 201;
        ctx.body = await createUser(control, body, actorOf(ctx, p));
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/admin/users/:id',
      access: 'public',
      body: patchUserBody,
      async handle(ctx, { body }) {
        const p = changer(ctx);
        // As PATCH /v1/users/:id: disabling, a password reset or a role change ends the user's
        // live sessions (their tabs and xpra clients are cut) before the answer.
        ctx.body = await changeUser(control, deps.sessions, await userId(ctx.params.id), body, actorOf(ctx, p));
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/admin/users/:id/second-factor/reset',
      access: 'public',
      async handle(ctx) {
        const p = changer(ctx);
        const id = await userId(ctx.params.id);
        ctx.body = { reset: await control.resetSecondFactors(id, { userId: p.id, username: p.username, ip: clientIp(ctx) ?? '' }) };
      },
    }),
    route({
      method: 'GET',
      path: '/web/api/admin/sessions',
      access: 'public',
      async handle(ctx) {
        const p = principal(ctx);
        const items = await needSessions().list(p.user, { all: true });
        const names = new Map<string, string | null>();
        for (const s of items) if (!names.has(s.user_id)) names.set(s.user_id, (await control.users.findById(s.user_id))?.username ?? null);
        const out: AdminSessionView[] = items.map((s) => ({ ...s, username: names.get(s.user_id) ?? null, client_connected: s.state === 'connected' }));
        ctx.body = { items: out };
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/admin/sessions/:id/stop',
      access: 'public',
      async handle(ctx) {
        const p = changer(ctx);
        const id = String(ctx.params.id ?? '').toLowerCase();
        if (!UUID.test(id)) throw new AppError('NOT_FOUND', 'no such session');
        ctx.body = await needSessions().stop(p.user, id, { sourceIp: clientIp(ctx), log: ctx.state.log });
      },
    }),
    route({
      method: 'GET',
      path: '/web/api/admin/audit',
      access: 'public',
      query: auditFilters,
      async handle(ctx, { query }) {
        ctx.body = auditPageToWire(await queryAudit(needDb(), await auditQuery(query)));
      },
    }),
    route({
      method: 'GET',
      path: '/web/api/admin/audit/verify',
      access: 'public',
      async handle(ctx) {
        ctx.body = await verifyAuditChain(needDb());
      },
    }),
    route({
      method: 'GET',
      path: '/web/api/admin/audit.csv',
      access: 'public',
      query: auditFilters,
      async handle(ctx, { query }) {
                const csv = await auditCsv(needDb(), await auditQuery(query));
        ctx.type = 'text/csv; charset=utf-8';
        ctx.set('Content-Disposition', 'attachment; filename="hackstream-audit.csv"');
        ctx.set('X-HackStream-Rows', String(csv.rows));
        if (csv.truncated) ctx.set('X-HackStream-Truncated', '1');
        ctx.body = csv.text;
      },
    }),
    route({
      method: 'GET',
      path: '/web/api/admin/capacity',
      access: 'public',
      async handle(ctx) {
        ctx.body = await needSessions().capacity();
      },
    }),
  ];
}
