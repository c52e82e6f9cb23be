import Router from '@koa/router';
import Koa from 'koa';
import type { DataSource } from 'typeorm';
import type { ControlPlane } from '../auth/index.js';
import type { Logger } from '../../lib/log.js';
import type { PluginHost } from '../plugin/host.js';
import type { SessionManager } from '../sessions/manager.js';
import { bodyLimit } from './body.js';
import { errorRenderer, requestContext, type ApiState } from './errors.js';
import { openApiRoute } from './openapi.js';
import { accessGuard, pluginCaller, type AnyRoute } from './route.js';
import { auditRoutes } from './routes/audit.js';
import { authRoutes } from './routes/auth.js';
import { meRoutes } from './routes/me.js';
import { metricsRoutes, type MetricsEndpoint } from './routes/metrics.js';
import { profileRoutes } from './routes/profiles.js';
import type { ProfileService } from '../profiles/service.js';
import { sessionRoutes } from './routes/sessions.js';
import { systemRoutes, type Probe } from './routes/system.js';
import { userRoutes } from './routes/users.js';
import { webRouter } from '../web/routes.js';
import { requestSpans } from '../tracing-http.js';

export interface ApiDeps {
  logger: Logger;
  control: ControlPlane;
  dataSource: DataSource;
  /** What /ready checks. */
  probes: Probe[];
  /** Counts a /ready request from a client address; throws 429 past the limit. */
  readyLimit?: (ip: string) => Promise<void>;
  /** Mounts plugins' routes under /v1/plugins/<name>. */
  plugins?: PluginHost;
  /** What /v1/metrics serves; absent when the API runs alone (tests): 404 then. */
  metrics?: MetricsEndpoint;
  /** The session API; absent in tests of the account API alone. */
  sessions?: SessionManager;
  /** Persistent profiles (usage, reset, an admin's delete); absent without sessions. */
  profiles?: ProfileService;
}

/**
 * Every core route, each with its access level (the RBAC tests walk this table) and its
 * schemas, and GET /v1/openapi.json, the OpenAPI document generated from them.
 */
export function apiRoutes(deps: ApiDeps): AnyRoute[] {
    const routes: AnyRoute[] = [
      ...systemRoutes({ control: deps.control, probes: deps.probes, ...(deps.readyLimit ? { readyLimit: deps.readyLimit } : {}) }),
      ...metricsRoutes(deps.metrics),
    ...authRoutes(deps.control),
    ...meRoutes(deps.control, deps.profiles),
    ...userRoutes(deps.control, deps.sessions),
    ...auditRoutes(deps.dataSource),
    ...(deps.sessions ? sessionRoutes(deps.sessions) : []),
    ...(deps.profiles ? profileRoutes(deps.control, deps.profiles) : []),
  ];
  routes.push(openApiRoute(routes));
  return routes;
}

/** The Koa app behind the API hostname. Routers stay thin; the work lives in core/auth. */
export function createApi(deps: ApiDeps): Koa<ApiState> {
  const app = new Koa<ApiState>();
  app.proxy = false;
  app.silent = true;
  const router = new Router<ApiState>();
  const guard = accessGuard(deps.control);
  for (const r of apiRoutes(deps)) r.mount(router, guard);
  // Plugin routes decide their own access: they get the caller (or null) and the client address.
  deps.plugins?.mountRoutes(router, pluginCaller(deps.control));

  app.use(requestSpans());
  app.use(requestContext(deps.logger));
  app.use(errorRenderer());
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    // Mozilla intermediate's HSTS: two years. Only ever served over TLS (the edge terminates it).
    ctx.set('Strict-Transport-Security', 'max-age=63072000');
    ctx.set('Cache-Control', 'no-store');
    await next();
  });
  app.use(bodyLimit());
  // The portal, xpra's HTML5 client and the portal's cookie API (core/web, docs/web.md).
  app.use(webRouter({ control: deps.control, dataSource: deps.dataSource, ...(deps.sessions ? { sessions: deps.sessions } : {}) }));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
