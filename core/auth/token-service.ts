import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import { RefreshTokenEntity, UserEntity, type RefreshToken, type Role, type User } from '../store/entities.js';
import type { KeyValueStore } from '../store/kv.js';
import type { Audit } from './audit.js';
import type { PrincipalCache } from './principal-cache.js';
import type { Revocations } from './revocations.js';
import type { AuthSettings } from './settings.js';
import { ACCESS_PREFIX, isTokenShaped, newToken, REFRESH_PREFIX, sha256Hex } from './tokens.js';

/** The caller of an authenticated request. */
export interface Principal {
  readonly id: string;
  readonly username: string;
  readonly role: Role;
  /** The refresh token family (login) the access token belongs to. */
  readonly family: string;
  /** The user's row as read to authenticate this request. */
  readonly user: User;
}

export interface TokenPair {
  accessToken: string;
  tokenType: 'Bearer';
  /** Seconds. */
  expiresIn: number;
  refreshToken: string;
  /** ISO 8601: when the refresh token dies unless used (idle) — never after the family's absolute end. */
  refreshExpiresAt: string;
}

/** What the key-value store keeps under an access token's hash. */
interface AccessRecord {
  u: string;
  /** The user's token epoch at issue: bumping it ends the token. */
  e: number;
  /** The refresh token family. */
  f: string;
  /** Expiry, epoch ms (the key's TTL): a cached principal never outlives it. Absent on older records. */
  x?: number;
}

/** The per-process principal cache and the channel that keeps every process's cache honest. */
export interface TokenCaching {
  cache: PrincipalCache;
  revocations: Revocations;
}

const TOKEN_INVALID = 'the refresh token is invalid, expired or already used';

/**
 * Opaque tokens. Access tokens live in the key-value store under their SHA-256 (TTL = their
 * lifetime) and are checked on every request against the user's row: disabled, token epoch
 * and a live refresh family. Refresh tokens are rows (hash only), rotated on every use;
 * presenting a used one revokes its whole family (reuse detection, no grace period).
 */
export class TokenService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly kv: KeyValueStore,
    private readonly audit: Audit,
    private readonly settings: AuthSettings,
    private readonly logger: Logger,
    private readonly caching: TokenCaching,
  ) {}

  /** Lookups in progress by token hash, with the cache generation they began in. */
  private readonly inflight = new Map<string, { ticket: number; lookup: Promise<Principal | null> }>();

  /** Tokens for a user who just logged in; the audit row is written with the family. */
  async login(user: User, ip: string | null, details: Record<string, unknown>): Promise<TokenPair> {
    const family = randomUUID();
    const refreshToken = newToken(REFRESH_PREFIX);
    const now = Date.now();
    const expiresAt = new Date(now + this.settings.refreshAbsoluteMs);
    await this.audit.transaction(async (tx) => {
      // Under the user's row lock: a logout, disable or password reset that committed since
      // the password check wins, and one that comes later sees this token and revokes it.
      const current = await lockUser(tx.manager, user.id);
      if (!current || current.disabled || current.tokenEpoch !== user.tokenEpoch) {
        throw new AppError('AUTH_INVALID_CREDENTIALS', 'invalid username or password');
      }
      await tx.manager.getRepository(RefreshTokenEntity).insert({
        userId: user.id,
        familyId: family,
        tokenHash: sha256Hex(refreshToken),
        parentId: null,
        expiresAt,
        lastUsedAt: new Date(now),
      });
      await tx.audit({ actor: user.id, action: 'authn_login_success', target: user.id, sourceIp: ip, result: 'success', details: { family, ...details } });
    });
    return this.pair(user, family, refreshToken, now, expiresAt);
  }

  /** Exchanges a refresh token for a new pair; the old one stops working. */
  async refresh(token: string, ip: string | null, log: Logger = this.logger): Promise<TokenPair> {
    if (!isTokenShaped(token, REFRESH_PREFIX)) throw new AppError('AUTH_TOKEN_INVALID', TOKEN_INVALID);
    const now = Date.now();
    const outcome = await this.audit.transaction(async (tx) => {
      const repo = tx.manager.getRepository(RefreshTokenEntity);
      const hash = sha256Hex(token);
      const seen = await repo.findOneBy({ tokenHash: hash });
      if (!seen) return { ok: false as const, reason: 'unknown' };
      // User row first, then the token row: the order logout and user changes take them in,
      // so a refresh racing a logout either finishes first (and is revoked by it) or sees it.
      const user = await lockUser(tx.manager, seen.userId);
      const row = await repo.createQueryBuilder('t').setLock('pessimistic_write').where('t.id = :id', { id: seen.id }).getOne();
      if (!row) return { ok: false as const, reason: 'unknown' };
      if (row.usedAt !== null || row.revokedAt !== null) {
        if (row.usedAt === null) return { ok: false as const, reason: 'revoked' };
        // A used token again: someone else holds a copy. End the whole login.
        const revoked = await repo
          .createQueryBuilder()
          .update()
          .set({ revokedAt: new Date(now) })
          .where('family_id = :f AND revoked_at IS NULL', { f: row.familyId })
          .execute();
        await tx.audit({
          actor: row.userId,
          action: 'authn_token_reuse',
          target: row.userId,
          sourceIp: ip,
          result: 'failure',
          details: { family: row.familyId, tokensRevoked: revoked.affected ?? 0 },
        });
        return { ok: false as const, reason: 'reuse', userId: row.userId };
      }
      const life = await this.alive(tx.manager, row, now);
      if (!life.alive) return { ok: false as const, reason: 'expired' };
      if (!user || user.disabled) return { ok: false as const, reason: 'user' };
      await repo.update({ id: row.id }, { usedAt: new Date(now), lastUsedAt: new Date(now) });
      const next = newToken(REFRESH_PREFIX);
      await repo.insert({ userId: row.userId, familyId: row.familyId, tokenHash: sha256Hex(next), parentId: row.id, expiresAt: row.expiresAt, lastUsedAt: new Date(now) });
      await tx.audit({ actor: user.id, action: 'authn_token_refreshed', target: user.id, sourceIp: ip, result: 'success', details: { family: row.familyId, ...(life.keptBySession ? { keptBySession: life.keptBySession } : {}) } });
      // Before the commit: when the key-value store is down this throws, the transaction rolls
      // back and the presented token stays unspent (else the client would lose its login, and
      // its retry would look like reuse and revoke the family).
      const accessToken = await this.storeAccess(user, row.familyId);
      return { ok: true as const, user, family: row.familyId, next, accessToken, expiresAt: row.expiresAt };
    });
    if (!outcome.ok) {
      // The family's access tokens died with it: no process may keep serving them.
      if (outcome.userId !== undefined) await this.caching.revocations.userChanged(outcome.userId);
      log.info({ reason: outcome.reason }, 'refresh refused');
      throw new AppError('AUTH_TOKEN_INVALID', TOKEN_INVALID);
    }
    return this.pairOf(outcome.accessToken, outcome.next, now, outcome.expiresAt);
  }

  /**
   * The principal behind an access token, or null: the token exists (not expired), the user is
   * enabled, the epoch matches and the family is live. Answered from the principal cache when
   * it holds the token (at most its TTL old, and every change that ends a token empties it in
   * every process); else read, and cached only if nothing changed meanwhile. Store errors
   * propagate (fail closed); only an accepted token is ever cached.
   */
  async authenticate(token: string): Promise<Principal | null> {
    if (!isTokenShaped(token, ACCESS_PREFIX)) return null;
    const hash = sha256Hex(token);
    const { cache } = this.caching;
    const hit = cache.get(hash);
    if (hit) return hit;
    const ticket = cache.ticket();
    // Requests of one token arriving together share one lookup (else every expiry of the
    // entry sends all of a client's in-flight requests to the store at once) — but only a
    // lookup begun after the last change: an older one may have read the rows before it.
    const pending = this.inflight.get(hash);
    if (pending && pending.ticket === ticket) return pending.lookup;
    const lookup = this.lookup(hash, ticket).finally(() => {
      if (this.inflight.get(hash)?.lookup === lookup) this.inflight.delete(hash);
    });
    this.inflight.set(hash, { ticket, lookup });
    return lookup;
  }

  private async lookup(hash: string, ticket: number): Promise<Principal | null> {
    const { cache } = this.caching;
    const raw = await this.kv.get(`access:${hash}`);
    const rec = raw === null ? null : parseAccess(raw);
    if (!rec) return null;
    // One query: the user as of now (role, disabled, epoch) and whether the login is live.
    const rows: unknown = await this.dataSource.query(
      `SELECT u.*, EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = $2 AND t.revoked_at IS NULL) AS family_live
       FROM users u WHERE u.id = $1`,
      [rec.u, rec.f],
    );
    const row = (Array.isArray(rows) ? rows[0] : undefined) as (UserRow & { family_live: boolean }) | undefined;
    if (!row || row.disabled || row.token_epoch !== rec.e || !row.family_live) return null;
    const user = Object.freeze(userFromRow(row));
    const principal: Principal = Object.freeze({ id: user.id, username: user.username, role: user.role, family: rec.f, user });
    if (rec.x !== undefined) cache.set(hash, principal, rec.x, ticket);
    return principal;
  }

  /** Logout: every token of the user ends (all devices), with its audit row. */
  async logout(principal: Principal, ip: string | null, revokeAll: (m: EntityManager, userId: string) => Promise<void>): Promise<void> {
    await this.audit.transaction(async (tx) => {
      await revokeAll(tx.manager, principal.id);
      await tx.audit({ actor: principal.id, action: 'authn_logout', target: principal.id, sourceIp: ip, result: 'success', details: { family: principal.family } });
    });
    await this.caching.revocations.userChanged(principal.id);
  }

  /**
   * Whether a refresh token may still be used: before the family's absolute end, and either used
   * within the idle lifetime or kept by a running session of its user (ready, connected or idle)
   * that began while this login was alive. Watching a session is using the login, and nothing
   * runs on the client while it is shown (bin/hackstream's hand-off), so the server counts it;
   * the session's own idle timeout then ends what a forgotten client would keep alive.
   */
  private async alive(manager: EntityManager, row: RefreshToken, now: number): Promise<{ alive: boolean; keptBySession?: string }> {
    if (row.expiresAt.getTime() <= now) return { alive: false };
    const idleEnd = (row.lastUsedAt ?? row.createdAt).getTime() + this.settings.refreshIdleMs;
    if (idleEnd > now) return { alive: true };
    const rows: unknown = await manager.query(
      `SELECT id FROM sessions WHERE user_id = $1 AND state IN ('ready', 'connected', 'idle') AND created_at < $2 ORDER BY created_at LIMIT 1`,
      [row.userId, new Date(idleEnd)],
    );
    const id = (Array.isArray(rows) ? (rows[0] as { id?: unknown } | undefined) : undefined)?.id;
    return typeof id === 'string' ? { alive: true, keptBySession: id } : { alive: false };
  }

  private async pair(user: User, family: string, refreshToken: string, now: number, familyEnd: Date): Promise<TokenPair> {
    return this.pairOf(await this.storeAccess(user, family), refreshToken, now, familyEnd);
  }

  /** A new access token of the family, recorded in the key-value store (throws when it is down). */
  private async storeAccess(user: User, family: string): Promise<string> {
    const accessToken = newToken(ACCESS_PREFIX);
    const record: AccessRecord = { u: user.id, e: user.tokenEpoch, f: family, x: Date.now() + this.settings.accessTtlMs };
    await this.kv.set(accessKey(accessToken), JSON.stringify(record), { ttlMs: this.settings.accessTtlMs });
    return accessToken;
  }

  private pairOf(accessToken: string, refreshToken: string, now: number, familyEnd: Date): TokenPair {
    const idleEnd = now + this.settings.refreshIdleMs;
    return {
      accessToken,
      tokenType: 'Bearer',
      expiresIn: Math.floor(this.settings.accessTtlMs / 1000),
      refreshToken,
      refreshExpiresAt: new Date(Math.min(idleEnd, familyEnd.getTime())).toISOString(),
    };
  }
}

/** A users row as the driver returns it (snake_case columns). */
interface UserRow {
  id: string;
  username: string;
  password_hash: string | null;
  source: string | null;
  role: Role;
  disabled: boolean;
  token_epoch: number;
  quota_max_sessions: number | null;
  quota_cpu_millicores: number | null;
  quota_memory_mb: number | null;
  quota_idle_timeout_s: number | null;
  quota_max_duration_s: number | null;
  quota_storage_mb: number | null;
  quota_profile_mb: number | null;
  created_at: Date;
  updated_at: Date;
}

function userFromRow(r: UserRow): User {
  return {
    id: r.id,
    username: r.username,
    passwordHash: r.password_hash,
    source: r.source,
    role: r.role,
    disabled: r.disabled,
    tokenEpoch: r.token_epoch,
    quotaMaxSessions: r.quota_max_sessions,
    quotaCpuMillicores: r.quota_cpu_millicores,
    quotaMemoryMb: r.quota_memory_mb,
    quotaIdleTimeoutS: r.quota_idle_timeout_s,
    quotaMaxDurationS: r.quota_max_duration_s,
    quotaStorageMb: r.quota_storage_mb,
    quotaProfileMb: r.quota_profile_mb,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function lockUser(manager: EntityManager, id: string): Promise<User | null> {
  return manager.getRepository(UserEntity).createQueryBuilder('u').setLock('pessimistic_read').where('u.id = :id', { id }).getOne();
}

function accessKey(token: string): string {
  return `access:${sha256Hex(token)}`;
}

function parseAccess(raw: string): AccessRecord | null {
  try {
    const v = JSON.parse(raw) as Partial<AccessRecord>;
    if (typeof v.u !== 'string' || typeof v.e !== 'number' || typeof v.f !== 'string') return null;
    return { u: v.u, e: v.e, f: v.f, ...(typeof v.x === 'number' ? { x: v.x } : {}) };
  } catch {
    return null;
  }
}
