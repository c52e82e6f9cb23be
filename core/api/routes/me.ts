import type { ControlPlane } from '../../auth/index.js';
import { userView } from '../../auth/index.js';
import { principal, route, type AnyRoute } from '../route.js';

/** GET /v1/me, GET /v1/quotas: the caller's own account. */
export function meRoutes(control: ControlPlane): AnyRoute[] {
  return [
    route({
      method: 'GET',
      path: '/v1/me',
      access: 'user',
      async handle(ctx) {
        // The row authentication read for this very request: no second query.
        ctx.body = userView(principal(ctx).user);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/quotas',
      access: 'user',
      async handle(ctx) {
        const user = principal(ctx).user;
        const { quota, usage } = await control.quotas.describe(user);
        ctx.body = { quota, usage, override: userView(user).quota };
      },
    }),
  ];
}
