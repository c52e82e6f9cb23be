import Router from '@koa/router';
import Koa from 'koa';
import type { GatewayMetricsSnapshot } from '../../gateway/metrics.js';
import { renderPrometheus } from '../../gateway/metrics.js';
import type { Logger } from '../log.js';
import type { PluginHost } from '../plugin/host.js';
import { errorRenderer, requestContext, type ApiState } from './errors.js';

export interface ApiDeps {
  logger: Logger;
  /** Mounts plugins' routes under /v1/plugins/<name>. */
  plugins?: PluginHost;
  /** Gateway counters for /v1/metrics; absent when the API runs without a gateway (tests). */
  gatewayMetrics?: () => GatewayMetricsSnapshot;
}

/** The Koa app behind the API hostname. Routers stay thin; the work lives in core services. */
export function createApi(deps: ApiDeps): Koa<ApiState> {
  const app = new Koa<ApiState>();
  app.proxy = false;
  app.silent = true;
  const router = new Router<ApiState>();

  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  // TODO(issue 3): restrict to admins once accounts exist.
  router.get('/v1/metrics', (ctx) => {
    const m = deps.gatewayMetrics?.();
    ctx.type = 'text/plain; version=0.0.4';
    ctx.body = m ? renderPrometheus(m) : '';
  });

  deps.plugins?.mountRoutes(router);

  app.use(requestContext(deps.logger));
  app.use(errorRenderer());
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
