import type { ControlPlane } from '../../auth/index.js';
import { AppError } from '../../errors.js';
import type { ProfileService } from '../../profiles/service.js';
import { clientIp, principal, route, type AnyRoute, type ApiContext } from '../route.js';
import { profileDeletedSchema, profileSchema, profileUsageToWire, userProfileDeletedSchema, userProfileSchema } from '../schemas.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The user named in the path, or 404 (anything that is not a uuid is simply not found). */
async function pathUser(control: ControlPlane, ctx: ApiContext): Promise<string> {
  const id = String(ctx.params.id ?? '').toLowerCase();
  const user = UUID.test(id) ? await control.users.findById(id) : null;
  if (!user) throw new AppError('NOT_FOUND', 'no such user');
  return user.id;
}

/**
 * The caller's persistent profile (GET /v1/profile, POST /v1/profile/reset) and any user's
 * for an admin (GET /v1/users/:id/profile, POST /v1/users/:id/profile/delete). A delete is
 * refused with 409 PROFILE_IN_USE while a persistent session of that user is live.
 */
export function profileRoutes(control: ControlPlane, profiles: ProfileService): AnyRoute[] {
  return [
    route({
      method: 'GET',
      path: '/v1/profile',
      access: 'user',
      summary: "The caller's persistent profile",
      responses: { 200: profileSchema },
      async handle(ctx) {
        ctx.body = { profile: profileUsageToWire(await profiles.usage(principal(ctx).user.id)) };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/profile/reset',
      access: 'user',
      summary: "Delete the caller's persistent profile",
      responses: { 200: profileDeletedSchema },
      async handle(ctx) {
        const user = principal(ctx).user;
        ctx.body = { deleted: await profiles.remove(user, user.id, clientIp(ctx)) };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/users/:id/profile',
      access: 'admin',
      summary: "A user's persistent profile (admin)",
      responses: { 200: userProfileSchema },
      async handle(ctx) {
        const userId = await pathUser(control, ctx);
        ctx.body = { user_id: userId, profile: profileUsageToWire(await profiles.usage(userId)) };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/users/:id/profile/delete',
      access: 'admin',
      summary: "Delete a user's persistent profile (admin)",
      responses: { 200: userProfileDeletedSchema },
      async handle(ctx) {
        const userId = await pathUser(control, ctx);
        ctx.body = { user_id: userId, deleted: await profiles.remove(principal(ctx).user, userId, clientIp(ctx)) };
      },
    }),
  ];
}
