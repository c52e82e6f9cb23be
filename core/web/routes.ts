import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Router, { type RouterMiddleware } from '@koa/router';
import type Koa from 'koa';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import type { ControlPlane } from '../auth/index.js';
import { AppError } from '../errors.js';
import type { ApiState } from '../api/errors.js';
import { clientIp, route, type AnyRoute, type ApiContext } from '../api/route.js';
import { effectiveQuotaToWire } from '../api/schemas.js';
import type { SessionManager } from '../sessions/manager.js';
import { createSessionBody, sessionView } from '../sessions/view.js';
import { mountAdminPages } from './admin-pages.js';
import { mountAdminApi } from './admin-routes.js';
import { bundle } from './bundle.js';
import { checkCsrf, checkOrigin, clearSessionCookies, cookieAuth, endThisLogin, setSessionCookies } from './cookie-auth.js';
import { PORTAL_CSP, PORTAL_HTML, XPRA_HTML, xpraCsp } from './pages.js';
import { clearChallenge, keptChallenge, ssoRoutes } from './sso.js';
import { DEFAULT_XPRA_WWW, xpraAsset } from './static-files.js';

export interface WebDeps {
  control: ControlPlane;
  sessions?: SessionManager;
  /** xpra's HTML5 client (Debian: /usr/share/xpra/www). */
  xpraWww?: string;
  /** The audit's database, for the admin console (core/web/admin-routes.ts). */
  dataSource?: DataSource;
}

const loginBody = z.strictObject({ username: z.string().min(1).max(256), password: z.string().min(1).max(4096) });
// No challenge_id: the one an SSO sign-in kept in its cookie (core/web/sso.ts).
const secondFactorBody = z.strictObject({ challenge_id: z.string().min(1).max(256).optional(), factor: z.string().min(1).max(64), response: z.string().min(1).max(1024) });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function sessionId(ctx: ApiContext): string {
  const id = String(ctx.params.id ?? '').toLowerCase();
  if (!UUID.test(id)) throw new AppError('NOT_FOUND', 'no such session');
  return id;
}

/** The portal's JSON API under /web/api: the cookie instead of a bearer token, CSRF checks on every POST. */
function portalApi(deps: WebDeps): AnyRoute[] {
  const { control, sessions } = deps;
  const who = cookieAuth(control);
  const user = async (ctx: ApiContext) => {
    const p = await who(ctx);
    ctx.state.principal = p;
    ctx.state.userId = p.id;
    return p;
  };
  const needSessions = (): SessionManager => {
    if (!sessions) throw new AppError('NOT_FOUND', 'sessions are not enabled');
    return sessions;
  };
  /** The caller's own session (not even an admin opens another user's session here). */
  const own = async (ctx: ApiContext) => {
    const p = await user(ctx);
    const row = await needSessions().get(p.user, sessionId(ctx));
    if (row.userId !== p.id) throw new AppError('NOT_FOUND', 'no such session');
    return { p, row };
  };
  const caller = (ctx: ApiContext) => ({ sourceIp: clientIp(ctx), log: ctx.state.log });
  return [
    route({
      method: 'GET',
      path: '/web/api/methods',
      access: 'public',
      handle(ctx) {
        // The sign-in methods this server offers: the password form, and a link per redirect flow (SSO).
        ctx.body = { password: true, flows: control.flows.list() };
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/login',
      access: 'public',
      body: loginBody,
      async handle(ctx, { body }) {
        checkCsrf(ctx);
        const pair = await control.login({ username: body.username, password: body.password, ip: clientIp(ctx) }, ctx.state.log);
        setSessionCookies(ctx, pair);
        ctx.status = 204;
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/login/second-factor',
      access: 'public',
      body: secondFactorBody,
      async handle(ctx, { body }) {
        checkCsrf(ctx);
        const challengeId = body.challenge_id ?? keptChallenge(ctx);
        if (!challengeId) throw new AppError('AUTH_CHALLENGE_INVALID', 'no sign-in is waiting for a second factor; sign in again');
        setSessionCookies(ctx, await control.secondFactor({ challengeId, factor: body.factor, response: body.response, ip: clientIp(ctx) }, ctx.state.log));
        if (!body.challenge_id) clearChallenge(ctx);
        ctx.status = 204;
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/logout',
      access: 'public',
      async handle(ctx) {
        checkCsrf(ctx);
        const p = await user(ctx).catch(() => null);
        // Only this browser's login ends: the user's CLI and other browsers keep theirs.
        if (p) await endThisLogin(control, p, clientIp(ctx));
        clearSessionCookies(ctx);
        ctx.status = 204;
      },
    }),
    route({
      method: 'GET',
      path: '/web/api/me',
      access: 'public',
      async handle(ctx) {
        const p = await user(ctx);
        const { quota, usage } = await control.quotas.describe(p.user);
        ctx.body = { id: p.id, username: p.username, role: p.role, quota: effectiveQuotaToWire(quota), usage: { sessions: usage.sessions, storage_mb: usage.storageMb } };
      },
    }),
    route({
      method: 'GET',
      path: '/web/api/sessions',
      access: 'public',
      async handle(ctx) {
        const p = await user(ctx);
        ctx.body = { items: await needSessions().list(p.user, {}) };
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/sessions',
      access: 'public',
      body: createSessionBody,
      async handle(ctx, { body }) {
        checkCsrf(ctx);
        const p = await user(ctx);
        const { session } = await needSessions().create(p.user, body, caller(ctx));
        ctx.status = 201;
        ctx.body = session;
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/sessions/:id/stop',
      access: 'public',
      async handle(ctx) {
        checkCsrf(ctx);
        const { p, row } = await own(ctx);
        ctx.body = await needSessions().stop(p.user, row.id, caller(ctx));
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/sessions/:id/connect',
      access: 'public',
      async handle(ctx) {
        checkCsrf(ctx);
        const { p, row } = await own(ctx);
        const c = await needSessions().connect(p.user, row.id, caller(ctx));
        // The page needs only the one-time password for xpra's login (never in a URL) and the preset.
        ctx.body = { token: c.token, expires_at: c.expires_at, quality: row.quality };
      },
    }),
    route({
      method: 'POST',
      path: '/web/api/sessions/:id/tunnel',
      access: 'public',
      async handle(ctx) {
        // Asked by the edge for a WebSocket upgrade it holds: the browser's cookie and Origin.
        checkOrigin(ctx, true);
        const { p, row } = await own(ctx);
        const t = await needSessions().relayTarget(p.user, row.id);
        ctx.body = { sni: t.sni, ca_cert: t.caPem, session: sessionView(row).session_id };
      },
    }),
  ];
}

/** The portal (/), its assets, xpra's HTML5 client (/xpra/) and the portal's API (/web/api). */
export function webRouter(deps: WebDeps): Koa.Middleware<ApiState> {
  const router = new Router<ApiState>();
  const open = (): RouterMiddleware<ApiState> => (_ctx, next) => next();
  for (const r of portalApi(deps)) r.mount(router, open);
  // The admin console (admins only; 404 for anyone else): docs/web.md "The admin console".
  mountAdminApi(router, deps);
  mountAdminPages(router, deps.control);
  for (const r of ssoRoutes(deps.control)) router.get(r.path, r.handler);
  const www = deps.xpraWww ?? DEFAULT_XPRA_WWW;
  const html = (ctx: Koa.ParameterizedContext<ApiState>, body: string, csp: string) => {
    ctx.set('Content-Security-Policy', csp);
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = body;
  };
  router.get('/', (ctx) => html(ctx, PORTAL_HTML, PORTAL_CSP));
  router.get('/xpra/session.html', (ctx) => html(ctx, XPRA_HTML, xpraCsp(ctx.get('host'))));
  router.get('/assets/:name', async (ctx) => {
    const name = String(ctx.params.name ?? '');
    if (name === 'portal.js' || name === 'xpra-open.js') {
      ctx.type = 'text/javascript; charset=utf-8';
      ctx.body = (await bundle(name === 'portal.js' ? 'portal' : 'xpra-open')).js;
    } else if (name === 'portal.css' || name === 'xpra-page.css') {
      ctx.type = 'text/css; charset=utf-8';
      ctx.body = await readFile(join(import.meta.dirname, '../../web/src', name), 'utf8');
    }
  });
  const routes = router.routes() as Koa.Middleware<ApiState>;
  return async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path.startsWith('/xpra/') && ctx.path !== '/xpra/session.html') {
      let rel: string;
      try {
        rel = decodeURIComponent(ctx.path.slice('/xpra/'.length));
      } catch {
        return next();
      }
      const file = await xpraAsset(www, rel);
      if (!file) return next();
      ctx.type = file.type;
      ctx.body = file.body;
      return;
    }
    return routes(ctx, next);
  };
}
