import type { ControlPlane } from '../../auth/index.js';
import { userView } from '../../auth/index.js';
import { AppError } from '../../errors.js';
import { principal, route, type AnyRoute } from '../route.js';

/** GET /v1/me, GET /v1/quotas: the caller's own account. */
export function meRoutes(control: ControlPlane): AnyRoute[] {
  const self = async (id: string) => {
    const user = await control.users.findById(id);
    // The token was checked a moment ago; a user deleted since is simply gone.
    if (!user) throw new AppError('AUTH_REQUIRED', 'log in first');
    return user;
  };
  return [
    route({
      method: 'GET',
      path: '/v1/me',
      access: 'user',
      async handle(ctx) {
        ctx.body = userView(await self(principal(ctx).id));
      },
    }),
    route({
      method: 'GET',
      path: '/v1/quotas',
      access: 'user',
      async handle(ctx) {
        const user = await self(principal(ctx).id);
        const { quota, usage } = await control.quotas.describe(user);
        ctx.body = { quota, usage, override: userView(user).quota };
      },
    }),
  ];
}
