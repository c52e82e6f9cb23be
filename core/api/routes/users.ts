import { z } from 'zod';
import { userView, usernameSchema, type ControlPlane } from '../../auth/index.js';
import { AppError } from '../../errors.js';
import type { SessionManager, UserEndReason } from '../../sessions/manager.js';
import { ROLES, type User } from '../../store/entities.js';
import { clientIp, principal, route, type AnyRoute } from '../route.js';
import { quotaFromWire, userPageSchema, userPageToWire, userSchema, userToWire, wireQuotaFields } from '../schemas.js';

const password = z.string().min(1).max(4096);

/** Per-user overrides in API units, under their wire names; null returns a field to the role's default. */
const quotaPatch = z.strictObject({
  max_sessions: wireQuotaFields.max_sessions.nullable().optional(),
  cpus: wireQuotaFields.cpus.nullable().optional(),
  memory_mb: wireQuotaFields.memory_mb.nullable().optional(),
  idle_timeout_minutes: wireQuotaFields.idle_timeout_minutes.nullable().optional(),
  max_duration_minutes: wireQuotaFields.max_duration_minutes.nullable().optional(),
  storage_mb: wireQuotaFields.storage_mb.nullable().optional(),
  profile_mb: wireQuotaFields.profile_mb.nullable().optional(),
});

export const createUserBody = z.strictObject({
  username: usernameSchema,
  password,
  role: z.enum(ROLES).default('user'),
  quota: quotaPatch.optional(),
});

export const patchUserBody = z
  .strictObject({
    disabled: z.boolean().optional(),
    role: z.enum(ROLES).optional(),
    quota: quotaPatch.optional(),
    password: password.optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'name at least one of disabled, role, quota, password');

const unlockBody = z.strictObject({
  /** Why (e.g. the ticket): kept in the audit row. */
  reason: z.string().trim().min(1).max(500).optional(),
});

const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().min(1).max(200).optional(),
});

/** What of a change ends the user's live sessions (as it revokes their tokens), if anything. */
function endsSessions(before: User, patch: z.output<typeof patchUserBody>): UserEndReason | undefined {
  if (patch.disabled === true && !before.disabled) return 'user-disabled';
  if (patch.password !== undefined) return 'password-reset';
  if (patch.role !== undefined && patch.role !== before.role) return 'role-changed';
  return undefined;
}

type Actor = { id: string; ip: string | null };

/** Creates a user from a create body (POST /v1/users, the admin console); answers its wire view. */
export async function createUser(control: ControlPlane, body: z.output<typeof createUserBody>, actor: Actor): Promise<z.output<typeof userSchema>> {
  const user = await control.users.create({ username: body.username, password: body.password, role: body.role, ...(body.quota ? { quota: quotaFromWire(body.quota) } : {}) }, actor);
  return userToWire(userView(user));
}

/**
 * Applies a patch body (PATCH /v1/users/:id, the admin console). Disabling the user, resetting
 * their password or changing their role also ends their live sessions (attached clients are
 * cut) before it answers the user's wire view.
 */
export async function changeUser(
  control: ControlPlane,
  sessions: Pick<SessionManager, 'endUserSessions'> | undefined,
  id: string,
  body: z.output<typeof patchUserBody>,
  actor: Actor,
): Promise<z.output<typeof userSchema>> {
  const before = await control.users.findById(id);
  const user = await control.users.update(id, { ...body, ...(body.quota ? { quota: quotaFromWire(body.quota) } : {}) }, actor);
  const cause = before ? endsSessions(before, body) : undefined;
  if (cause && sessions) await sessions.endUserSessions(id, cause, actor);
  return userToWire(userView(user));
}

/**
 * Admin only: POST /v1/users, GET /v1/users, PATCH /v1/users/:id, POST /v1/users/:id/unlock.
 * A PATCH that disables the user, resets their password or changes their role also ends
 * their live sessions (attached clients are cut) before it answers.
 */
export function userRoutes(control: ControlPlane, sessions?: Pick<SessionManager, 'endUserSessions'>): AnyRoute[] {
  return [
    route({
      method: 'POST',
      path: '/v1/users',
      access: 'admin',
      summary: 'Create a user (admin)',
      responses: { 201: userSchema },
      body: createUserBody,
      async handle(ctx, { body }) {
        const user = await createUser(control, body, { id: principal(ctx).id, ip: clientIp(ctx) });
        ctx.status = 201;
        ctx.set('Location', `/v1/users/${user.id}`);
        ctx.body = user;
      },
    }),
    route({
      method: 'GET',
      path: '/v1/users',
      access: 'admin',
      summary: 'List users (admin)',
      responses: { 200: userPageSchema },
      query: listQuery,
      async handle(ctx, { query }) {
        ctx.body = userPageToWire(await control.users.list({ limit: query.limit, cursor: query.cursor }));
      },
    }),
    route({
      method: 'PATCH',
      path: '/v1/users/:id',
      access: 'admin',
      summary: 'Change a user (admin)',
      responses: { 200: userSchema },
      body: patchUserBody,
      async handle(ctx, { body }) {
        const id = ctx.params.id;
        if (id === undefined) throw new AppError('NOT_FOUND', 'no such user');
        ctx.body = await changeUser(control, sessions, id, body, { id: principal(ctx).id, ip: clientIp(ctx) });
      },
    }),
    route({
      method: 'POST',
      path: '/v1/users/:id/unlock',
      access: 'admin',
      summary: "Clear a user's login limits (admin)",
      responses: { 204: null },
      body: unlockBody,
      async handle(ctx, { body }) {
        const user = await control.users.findById(ctx.params.id ?? '');
        if (!user) throw new AppError('NOT_FOUND', 'no such user');
        // Audited first: an unlock that happened is never missing from the audit (a failed
        // one may leave a row; the admin's retry adds another).
        await control.audit.record({
          actor: principal(ctx).id,
          action: 'user_updated',
          target: user.id,
          sourceIp: clientIp(ctx),
          result: 'success',
          details: { username: user.username, loginUnlocked: true, ...(body.reason ? { reason: body.reason } : {}) },
        });
        await control.throttle.unlock(user.username);
        ctx.status = 204;
      },
    }),
  ];
}
