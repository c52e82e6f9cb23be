import { AppError, isAppError } from '../errors.js';
import { identitySchema } from '../plugin/auth-chain.js';
import { UserEntity, type User } from '../store/entities.js';
import { isUniqueViolation } from '../store/errors.js';
import type { Audit } from './audit.js';
import type { Users } from './users.js';

/** Why an external identity gets no account. Each becomes an audited login refusal. */
export type ProvisionRefusal = 'invalid-identity' | 'account-owned-elsewhere' | 'disabled' | 'role-change-refused';

export type ProvisionOutcome =
  | { readonly ok: true; readonly user: User; readonly created: boolean }
  | { readonly ok: false; readonly reason: ProvisionRefusal; readonly userId: string | null };

export interface ProvisionContext {
  /** The plugin that vouched for the identity: the audit actor of what provisioning changes. */
  readonly provider: string;
  readonly ip: string;
}

/**
 * Just-in-time provisioning of an external identity (contract v2): the account `username`
 * (case-insensitively) is created owned by `source` when missing, and its role follows the
 * provider on every login. A local account, or one owned by another source, is never taken
 * over; a disabled account stays disabled. The identity is validated again here: core never
 * trusts a plugin's shapes.
 */
export async function provisionIdentity(deps: { users: Users; audit: Audit }, input: unknown, ctx: ProvisionContext): Promise<ProvisionOutcome> {
  const parsed = identitySchema.safeParse(input);
  if (!parsed.success) return { ok: false, reason: 'invalid-identity', userId: null };
  const identity = parsed.data;
  let user = await deps.users.findByUsername(identity.username);
  let created = false;
  if (!user) {
    const made = await createExternal(deps.audit, identity, ctx);
    // Lost a race with a concurrent first login of the same name: use what the winner made.
    user = made ?? (await deps.users.findByUsername(identity.username));
    created = made !== null;
    if (!user) throw new AppError('SERVICE_UNAVAILABLE', 'the account could not be provisioned');
  }
  if (user.source !== identity.source) return { ok: false, reason: 'account-owned-elsewhere', userId: user.id };
  if (user.disabled) return { ok: false, reason: 'disabled', userId: user.id };
  if (user.role === identity.role) return { ok: true, user, created };
  try {
    // The same path as an admin's change: audited privilege_permissions_changed, every token revoked.
    const updated = await deps.users.update(user.id, { role: identity.role }, { id: ctx.provider, ip: ctx.ip });
    if (updated.disabled || updated.source !== identity.source) return { ok: false, reason: updated.disabled ? 'disabled' : 'account-owned-elsewhere', userId: user.id };
    return { ok: true, user: updated, created };
  } catch (err) {
    // The last enabled admin is never demoted, not even by its provider: no login then.
    if (isAppError(err) && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) return { ok: false, reason: 'role-change-refused', userId: user.id };
    throw err;
  }
}

/** Inserts the account (no password: it answers only its source) and its audit row; null if the name was taken meanwhile. */
async function createExternal(
  audit: Audit,
  identity: { username: string; role: 'admin' | 'user'; source: string; subject: string },
  ctx: ProvisionContext,
): Promise<User | null> {
  try {
    return await audit.transaction(async (tx) => {
      const repo = tx.manager.getRepository(UserEntity);
      const user = await repo.save(repo.create({ username: identity.username, passwordHash: null, role: identity.role, source: identity.source }));
      await tx.audit({
        actor: ctx.provider,
        action: 'user_created',
        target: user.id,
        sourceIp: ctx.ip,
        result: 'success',
        details: { username: user.username, role: user.role, source: identity.source, subject: identity.subject, provisioned: true },
      });
      return user;
    });
  } catch (err) {
    if (isUniqueViolation(err) || (isAppError(err) && err.code === 'CONFLICT')) return null;
    throw err;
  }
}
