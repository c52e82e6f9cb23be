import { setTimeout as sleep } from 'node:timers/promises';
import type { ControlPlane } from '../../auth/index.js';
import { AppError } from '../../errors.js';
import { route, type AnyRoute } from '../route.js';

/** Something /ready checks. */
export interface Probe {
  /** What the operator reads when it fails ("the database"). */
  name: string;
  /** Resolves when it answers; rejects with the reason for an operator otherwise. */
  ping(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 2_000;

/** GET /health (the process is up), GET /ready (its dependencies answer); /v1/metrics is in metrics.ts. */
export function systemRoutes(deps: { control: ControlPlane; probes: Probe[] }): AnyRoute[] {
  return [
    route({
      method: 'GET',
      path: '/health',
      access: 'public',
      handle(ctx) {
        ctx.body = { status: 'ok' };
      },
    }),
    route({
      method: 'GET',
      path: '/ready',
      access: 'public',
      async handle(ctx) {
        const results = await Promise.all(deps.probes.map(async (p) => ({ name: p.name, problem: await problem(p) })));
        const down = results.filter((r) => r.problem !== null);
        if (down.length > 0) {
          ctx.state.log.warn({ down }, 'not ready');
          throw new AppError('NOT_READY', `not ready: ${down.map((d) => `${d.name}: ${d.problem}`).join('; ')}`, {
            headers: { 'Retry-After': '5' },
          });
        }
        ctx.body = { status: 'ready' };
      },
    }),
  ];
}

/** null when the probe answered in time, else what went wrong. */
async function problem(probe: Probe): Promise<string | null> {
  const timeout = sleep(PROBE_TIMEOUT_MS, 'did not answer', { ref: false });
  return Promise.race([
    probe.ping().then(
      () => null,
      (err: unknown) => (err instanceof ProbeFailure ? err.message : 'did not answer'),
    ),
    timeout,
  ]);
}

/** A probe's own explanation (shown to the operator in /ready's body). */
export class ProbeFailure extends Error {}
