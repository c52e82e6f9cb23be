import type { DataSource, EntityManager } from 'typeorm';
import { z } from 'zod';
import { AppError } from '../errors.js';
import type { Quota } from '../plugin/contract.js';
import { RefreshTokenEntity, UserEntity, type Role, type User } from '../store/entities.js';
import { isUniqueViolation } from '../store/errors.js';
import type { Audit } from './audit.js';
import { passwordProblem } from './password-policy.js';
import type { PasswordHasher } from './passwords.js';
import { quotaColumns, quotaOverride, type QuotaPatch } from './quotas.js';

/**
 * Postgres NOTIFY channel: a user was disabled, or their password or role changed (their tokens
 * were revoked). Control ends their live sessions on it at once (core/sessions/reconciler.ts).
 */
export const USER_REVOKED_CHANNEL = 'hackstream_user_revoked';

/** Letters and digits first, then also . _ @ -; case-insensitively unique. */
export const usernameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[\p{L}\p{N}][\p{L}\p{N}._@-]*$/u, 'letters, digits, ".", "_", "@" or "-", starting with a letter or digit');

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A user as the API shows it (never the hash or the token epoch). */
export interface UserView {
  id: string;
  username: string;
  role: Role;
  disabled: boolean;
  /** The identity source that owns the account (`ldap`, `oidc:<issuer>`); null: a local account. */
  source: string | null;
  /** Per-user overrides of the role's quota, in API units; {} when none. */
  quota: Partial<Quota>;
  createdAt: string;
  updatedAt: string;
}

export function userView(u: User): UserView {
  return {
    id: u.id,
    username: u.username,
    role: u.role,
    disabled: u.disabled,
    source: u.source,
    quota: quotaOverride(u),
    createdAt: u.createdAt.toISOString(),
    updatedAt: u.updatedAt.toISOString(),
  };
}

/** Who made a change, for the audit row. */
export interface Actor {
  /** A user id, or "system" / "cli". */
  id: string;
  ip: string | null;
}

export interface NewUser {
  username: string;
  password: string;
  role: Role;
  quota?: QuotaPatch;
}

export interface UserPatch {
  disabled?: boolean;
  role?: Role;
  quota?: QuotaPatch;
  password?: string;
}

export interface UserPage {
  items: UserView[];
  nextCursor: string | null;
}

/** Local accounts: create, read, change. Every change is audited in its own transaction. */
export class Users {
  constructor(
    private readonly dataSource: DataSource,
    private readonly hasher: PasswordHasher,
    private readonly audit: Audit,
    /** After the commit of any change to a user (the principal cache forgets them). */
    private readonly changed: (userId: string) => Promise<void> = async () => {},
  ) {}

  findById(id: string, manager: EntityManager = this.dataSource.manager): Promise<User | null> {
    if (!UUID.test(id)) return Promise.resolve(null);
    return manager.getRepository(UserEntity).findOneBy({ id });
  }

  async findByUsername(username: string): Promise<User | null> {
    if (username.length === 0 || username.length > 256) return null;
    return this.dataSource.getRepository(UserEntity).createQueryBuilder('u').where('lower(u.username) = lower(:username)', { username }).getOne();
  }

  count(): Promise<number> {
    return this.dataSource.getRepository(UserEntity).count();
  }

  /** Hashes outside the transaction (seconds under load must not hold a connection). */
  async create(input: NewUser, actor: Actor, details: Record<string, unknown> = {}): Promise<User> {
    checkPassword(input.password, input.username);
    const passwordHash = await this.hasher.hash(input.password);
    return this.audit.transaction((tx) => this.insert(tx.manager, { ...input, passwordHash }, actor, details, (e) => tx.audit(e)));
  }

  /** Inserts a user and its audit row in the caller's transaction (bootstrap uses it directly). */
  async insert(
    manager: EntityManager,
    input: Omit<NewUser, 'password'> & { passwordHash: string },
    actor: Actor,
    details: Record<string, unknown>,
    audit: (e: Parameters<Audit['record']>[0]) => Promise<unknown>,
  ): Promise<User> {
    const repo = manager.getRepository(UserEntity);
    let user: User;
    try {
      user = await repo.save(repo.create({ username: input.username, passwordHash: input.passwordHash, role: input.role, ...quotaColumns(input.quota ?? {}) }));
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'a user with this username already exists', { cause: err });
      throw err;
    }
    await audit({
      actor: actor.id,
      action: 'user_created',
      target: user.id,
      sourceIp: actor.ip,
      result: 'success',
      details: { username: user.username, role: user.role, quota: quotaOverride(user), ...details },
    });
    return user;
  }

  /** Users ordered by username (case-insensitively, as they are unique); keyset-paginated. */
  async list(opts: { limit: number; cursor?: string | undefined }): Promise<UserPage> {
    const qb = this.dataSource.getRepository(UserEntity).createQueryBuilder('u').orderBy('lower(u.username)', 'ASC').limit(opts.limit + 1);
    if (opts.cursor !== undefined) qb.where('lower(u.username) > :after', { after: decodeCursor(opts.cursor) });
    const rows = await qb.getMany();
    const more = rows.length > opts.limit;
    if (more) rows.pop();
    const last = rows[rows.length - 1];
    return { items: rows.map(userView), nextCursor: more && last ? encodeCursor(last) : null };
  }

  /**
   * Applies an admin's change. Disabling, a new password and a new role end every token of
   * the user in the same transaction. The last enabled admin cannot be disabled or demoted.
   */
  async update(id: string, patch: UserPatch, actor: Actor): Promise<User> {
    const existing = await this.findById(id);
    if (!existing) throw new AppError('NOT_FOUND', 'no such user');
    if (patch.password !== undefined) checkPassword(patch.password, existing.username);
    const passwordHash = patch.password === undefined ? undefined : await this.hasher.hash(patch.password);
    const updated = await this.audit.transaction(async (tx) => {
      const repo = tx.manager.getRepository(UserEntity);
      const user = await repo.createQueryBuilder('u').setLock('pessimistic_write').where('u.id = :id', { id }).getOne();
      if (!user) throw new AppError('NOT_FOUND', 'no such user');
      const losesAdmin = user.role === 'admin' && !user.disabled && (patch.disabled === true || patch.role === 'user');
      if (losesAdmin) await assertAnotherAdmin(tx.manager, user.id);
      const changes: Partial<User> = { ...quotaColumns(patch.quota ?? {}) };
      if (patch.disabled !== undefined) changes.disabled = patch.disabled;
      if (patch.role !== undefined) changes.role = patch.role;
      if (passwordHash !== undefined) changes.passwordHash = passwordHash;
      const revoke = (patch.disabled === true && !user.disabled) || (patch.role !== undefined && patch.role !== user.role) || passwordHash !== undefined;
      Object.assign(user, changes);
      if (revoke) user.tokenEpoch += 1;
      const saved = await repo.save(user);
      if (revoke) {
        await revokeRefreshTokens(tx.manager, user.id);
        // Delivered at commit to every control plane on this store (the admin CLI is another process).
        await tx.manager.query('SELECT pg_notify($1, $2)', [USER_REVOKED_CHANNEL, user.id]);
      }
      await tx.audit({
        actor: actor.id,
        action: patch.role !== undefined && patch.role !== existing.role ? 'privilege_permissions_changed' : 'user_updated',
        target: user.id,
        sourceIp: actor.ip,
        result: 'success',
        details: {
          username: user.username,
          ...(patch.disabled !== undefined ? { disabled: patch.disabled } : {}),
          ...(patch.role !== undefined ? { role: patch.role, previousRole: existing.role } : {}),
          ...(patch.quota !== undefined ? { quota: patch.quota } : {}),
          ...(passwordHash !== undefined ? { passwordReset: true } : {}),
          tokensRevoked: revoke,
        },
      });
      return saved;
    });
    // Every change, not only the revoking ones: cached principals carry role and quotas.
    await this.changed(id);
    return updated;
  }

  /**
   * Ends every access and refresh token of the user (in the caller's transaction; the caller
   * announces the change after its commit).
   */
  async revokeAll(manager: EntityManager, userId: string): Promise<void> {
    await manager.getRepository(UserEntity).increment({ id: userId }, 'tokenEpoch', 1);
    await revokeRefreshTokens(manager, userId);
  }

  /** Replaces an outdated hash after a successful login (only if nobody changed it meanwhile). */
  async upgradeHash(user: User, password: string): Promise<void> {
    const passwordHash = await this.hasher.hash(password);
    await this.dataSource
      .getRepository(UserEntity)
      .createQueryBuilder()
      .update()
      .set({ passwordHash })
      .where('id = :id AND password_hash = :old', { id: user.id, old: user.passwordHash })
      .execute();
  }
}

export function checkPassword(password: string, username?: string): void {
  const problem = passwordProblem(password, username);
  if (problem) throw new AppError('PASSWORD_POLICY', problem);
}

async function revokeRefreshTokens(manager: EntityManager, userId: string): Promise<void> {
  await manager
    .getRepository(RefreshTokenEntity)
    .createQueryBuilder()
    .update()
    .set({ revokedAt: new Date() })
    .where('user_id = :userId AND revoked_at IS NULL', { userId })
    .execute();
}

async function assertAnotherAdmin(manager: EntityManager, userId: string): Promise<void> {
  // Locks every enabled admin row: two admins demoting each other cannot both succeed.
  const admins = await manager
    .getRepository(UserEntity)
    .createQueryBuilder('u')
    .setLock('pessimistic_write')
    .where("u.role = 'admin' AND u.disabled = false")
    .getMany();
  if (!admins.some((a) => a.id !== userId)) {
    throw new AppError('CONFLICT', 'this is the last enabled administrator: it cannot be disabled or demoted');
  }
}

function encodeCursor(u: User): string {
  return Buffer.from(`u1:${u.username.toLowerCase()}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const text = cursor.length <= 200 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const after = text.startsWith('u1:') ? text.slice(3) : '';
  if (!after || usernameSchema.safeParse(after).success === false) throw new AppError('VALIDATION_FAILED', 'cursor: not a cursor from this API');
  return after;
}
