import type { ControlPlane } from '../../auth/index.js';
import { userView } from '../../auth/index.js';
import type { ProfileService } from '../../profiles/service.js';
import { principal, route, type AnyRoute } from '../route.js';
import { quotasSchema, quotasToWire, userSchema, userToWire } from '../schemas.js';

/**
 * GET /v1/me, GET /v1/quotas: the caller's own account. `usage.profile` is the persistent
 * profile volume as statfs sees it ({size_mb, used_mb, free_mb}), null when there is none.
 */
export function meRoutes(control: ControlPlane, profiles?: ProfileService): AnyRoute[] {
  return [
    route({
      method: 'GET',
      path: '/v1/me',
      access: 'user',
      summary: "The caller's account",
      responses: { 200: userSchema },
      async handle(ctx) {
        // The row authentication read for this very request: no second query.
        ctx.body = userToWire(userView(principal(ctx).user));
      },
    }),
    route({
      method: 'GET',
      path: '/v1/quotas',
      access: 'user',
      summary: "The caller's quota and usage",
      responses: { 200: quotasSchema },
      async handle(ctx) {
        const user = principal(ctx).user;
        const [{ quota, usage }, profile] = await Promise.all([control.quotas.describe(user), profiles ? profiles.usageOrNull(user.id) : null]);
        ctx.body = quotasToWire({ quota, usage, profile, override: userView(user).quota });
      },
    }),
  ];
}
