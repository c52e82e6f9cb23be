import type { ControlPlane } from '../../auth/index.js';
import { checkReadiness, describeFailures, type Probe } from '../readiness.js';
import { clientIp, route, type AnyRoute } from '../route.js';
import { healthSchema, readySchema } from '../schemas.js';

export { ProbeFailure, type Probe } from '../readiness.js';

/**
 * GET /health (the process lives), GET /ready (this node can start a session now: every
 * probe's checks, each with its reason when it fails); /v1/metrics is in metrics.ts.
 */
export function systemRoutes(deps: {
  control: ControlPlane;
  probes: Probe[];
  /** Refuses a client over /ready's rate limit (429). */
  readyLimit?: (ip: string) => Promise<void>;
}): AnyRoute[] {
  return [
    route({
      method: 'GET',
      path: '/health',
      access: 'public',
      summary: 'The process lives',
      responses: { 200: healthSchema },
      handle(ctx) {
        ctx.body = { status: 'ok' };
      },
    }),
    route({
      method: 'GET',
      path: '/ready',
      access: 'public',
      summary: 'This node can start a session now (503 NOT_READY with each check)',
      responses: { 200: readySchema },
      async handle(ctx) {
        await deps.readyLimit?.(clientIp(ctx));
        const { ready, checks } = await checkReadiness(deps.probes);
        if (ready) {
          ctx.body = { status: 'ready', checks };
          return;
        }
        const message = `not ready: ${describeFailures(checks)}`;
        ctx.state.log.warn({ checks }, 'not ready');
        // The error envelope every client reads, plus each check with its reason for the operator.
        ctx.status = 503;
        ctx.set('Retry-After', '5');
        ctx.body = { status: 'not_ready', checks, error: { code: 'NOT_READY', message } };
      },
    }),
  ];
}
