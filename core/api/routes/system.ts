import type { GatewayMetricsSnapshot } from '../../../lib/edge-metrics.js';
import { renderPrometheus } from '../../../lib/edge-metrics.js';
import type { ControlPlane } from '../../auth/index.js';
import { checkReadiness, describeFailures, type Probe } from '../readiness.js';
import { clientIp, route, type AnyRoute } from '../route.js';
import { healthSchema, readySchema } from '../schemas.js';

export { ProbeFailure, type Probe } from '../readiness.js';

/**
 * GET /health (the process lives), GET /ready (this node can start a session now: every
 * probe's checks, each with its reason when it fails), GET /v1/metrics (admin).
 */
export function systemRoutes(deps: {
  control: ControlPlane;
  probes: Probe[];
  /** Refuses a client over /ready's rate limit (429). */
  readyLimit?: (ip: string) => Promise<void>;
  gatewayMetrics?: () => Promise<GatewayMetricsSnapshot>;
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
    route({
      method: 'GET',
      path: '/v1/metrics',
      access: 'admin',
      responses: { 200: 'text' },
      async handle(ctx) {
        const m = await deps.gatewayMetrics?.();
        ctx.type = 'text/plain; version=0.0.4';
        ctx.body = (m ? renderPrometheus(m) : '') + accountMetrics(deps.control);
      },
    }),
  ];
}

function accountMetrics(control: ControlPlane): string {
  return [
    '# HELP hackstream_password_hash_evaluations_total Argon2id hashes and verifies computed (dummy verifies included).',
    '# TYPE hackstream_password_hash_evaluations_total counter',
    `hackstream_password_hash_evaluations_total ${control.hasher.evaluations}`,
    '',
  ].join('\n');
}
