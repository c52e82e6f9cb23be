import { AppError } from '../../errors.js';
import { route, type AnyRoute } from '../route.js';

/** What GET /v1/metrics serves and who, besides an admin, may read it. */
export interface MetricsEndpoint {
  /** The registry in the Prometheus text format. */
  render(): Promise<string>;
  contentType: string;
  /** Whether an Authorization header carries the scrape credential. */
  isScraper(authorization: string | undefined): boolean;
}

/**
 * GET /v1/metrics: an admin's access token, or the scrape credential (metrics.scrapeTokenSha256).
 * Declared `admin` (the RBAC table and the guard's 401/403 stay as for every admin route); a
 * request carrying the scrape credential passes the guard without a user.
 */
export function metricsRoutes(metrics: MetricsEndpoint | undefined): AnyRoute[] {
  const inner = route({
    method: 'GET',
    path: '/v1/metrics',
    access: 'admin',
    summary: 'Prometheus metrics (an admin, or the scrape credential)',
    responses: { 200: 'text' },
    async handle(ctx) {
      if (!metrics) throw new AppError('NOT_FOUND', 'metrics are not served by this API');
      const body = await metrics.render();
      ctx.type = metrics.contentType;
      ctx.body = body;
    },
  });
  return [
    {
      ...inner,
      mount(router, guard) {
        inner.mount(router, (access) => {
          const forUsers = guard(access);
          return (ctx, next) => (metrics?.isScraper(ctx.get('authorization') || undefined) ? next() : forUsers(ctx, next));
        });
      },
    },
  ];
}
