import { EntitySchema } from 'typeorm';

/*
 * Entities are EntitySchema objects over plain interfaces rather than decorated classes:
 * tsx (esbuild) cannot emit decorator metadata, and no reflect-metadata or tsconfig flags
 * are needed. Columns map camelCase properties to the snake_case columns that the
 * hand-written migrations create; the migrations are the source of truth for the schema.
 */

export const ROLES = ['admin', 'user'] as const;
export type Role = (typeof ROLES)[number];

export const SESSION_STATES = ['starting', 'ready', 'connected', 'idle', 'stopping', 'stopped', 'failed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];
/** States after which a session has `endedAt` set (enforced by a CHECK constraint). */
export const FINAL_SESSION_STATES: readonly SessionState[] = ['stopped', 'failed'];

export const SESSION_PROFILES = ['ephemeral', 'persist'] as const;
export type SessionProfile = (typeof SESSION_PROFILES)[number];
export const SESSION_QUALITIES = ['low', 'auto', 'high'] as const;
export type SessionQuality = (typeof SESSION_QUALITIES)[number];

export const AUDIT_RESULTS = ['success', 'failure'] as const;
export type AuditResult = (typeof AUDIT_RESULTS)[number];

/** One set of quota limits. CPU is in millicores (1000 = one core). */
export interface QuotaLimits {
  maxSessions: number;
  cpuMillicores: number;
  memoryMb: number;
  idleTimeoutS: number;
  maxDurationS: number;
  storageMb: number;
}

/** A user's per-field overrides of the role defaults; null means "use the role's default". */
export type QuotaOverrides = { [K in keyof QuotaLimits]: QuotaLimits[K] | null };

export interface User {
  id: string;
  /** As entered; unique case-insensitively (a unique index on lower(username)). */
  username: string;
  /** PHC string (Argon2id); null for accounts without a local password. */
  passwordHash: string | null;
  role: Role;
  disabled: boolean;
  /** The identity source that owns the account (`ldap`, `oidc:<issuer>`); null: a local account. */
  source: string | null;
  /**
   * Tokens carry the epoch they were issued under; bumping it invalidates every access and
   * refresh token of the user at once (logout everywhere, password change, disable).
   */
  tokenEpoch: number;
  quotaMaxSessions: number | null;
  quotaCpuMillicores: number | null;
  quotaMemoryMb: number | null;
  quotaIdleTimeoutS: number | null;
  quotaMaxDurationS: number | null;
  quotaStorageMb: number | null;
  /** The persistent profile's size (MB); null: the policy's. */
  quotaProfileMb: number | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface RefreshToken {
  id: string;
  userId: string;
  /** Every rotation of one login shares a family; reuse of a used token revokes the family. */
  familyId: string;
  /** SHA-256 of the token, lowercase hex. The raw token is never stored. */
  tokenHash: string;
  /** The token this one replaced, null for the first of a family. */
  parentId: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  /** Absolute expiry; the idle lifetime is checked against createdAt/lastUsedAt. */
  expiresAt: Date;
  /** Set when the token was exchanged (rotated); presenting it again is reuse. */
  usedAt: Date | null;
  revokedAt: Date | null;
}

export interface Upstream {
  host: string;
  port: number;
}

export interface Session {
  id: string;
  userId: string;
  state: SessionState;
  app: string;
  url: string | null;
  profile: SessionProfile;
  quality: SessionQuality;
  containerId: string | null;
  hostname: string | null;
  upstream: Upstream | null;
  createdAt: Date;
  updatedAt: Date;
  /** Set exactly when the state is stopped or failed. */
  endedAt: Date | null;
  failureReason: string | null;
  /** The control-plane instance that runs it (container label org.hackstream.instance). */
  instanceId: string | null;
  memoryMb: number | null;
  cpuMillicores: number | null;
  /** No client attached for this long stops it. */
  idleTimeoutS: number | null;
  /** Stopped at this time whatever happens (maximum duration). */
  deadlineAt: Date | null;
  /** Since when no client is attached (null while one is). */
  idleSince: Date | null;
  /** Claimed from the pre-warmed pool rather than started cold. */
  pooled: boolean;
}

export interface QuotaDefaults extends QuotaLimits {
  role: Role;
  updatedAt: Date;
}

export interface AuditEntry {
  /** bigserial; pg returns int8 as a string to keep full precision. */
  id: string;
  at: Date;
  /** Who acted: a user id, "anonymous", "system" or a plugin name. */
  actor: string;
  /** One of core/audit's AUDIT_ACTIONS (OWASP logging vocabulary), e.g. authn_login_fail. */
  action: string;
  target: string | null;
  sourceIp: string | null;
  result: AuditResult;
  details: Record<string, unknown>;
  /** Hash of the previous row (AUDIT_GENESIS_HASH for the first); unique, so the chain cannot fork. */
  prevHash: string;
  hash: string;
}

const createdAt = { type: 'timestamptz', name: 'created_at', createDate: true } as const;
const updatedAt = { type: 'timestamptz', name: 'updated_at', updateDate: true } as const;
const optionalInt = (name: string) => ({ type: 'integer', name, nullable: true }) as const;
const requiredInt = (name: string) => ({ type: 'integer', name }) as const;

export const UserEntity = new EntitySchema<User>({
  name: 'User',
  tableName: 'users',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    username: { type: 'text' },
    passwordHash: { type: 'text', name: 'password_hash', nullable: true },
    role: { type: 'text', default: 'user' },
    disabled: { type: 'boolean', default: false },
    source: { type: 'text', nullable: true },
    tokenEpoch: { type: 'integer', name: 'token_epoch', default: 0 },
    quotaMaxSessions: optionalInt('quota_max_sessions'),
    quotaCpuMillicores: optionalInt('quota_cpu_millicores'),
    quotaMemoryMb: optionalInt('quota_memory_mb'),
    quotaIdleTimeoutS: optionalInt('quota_idle_timeout_s'),
    quotaMaxDurationS: optionalInt('quota_max_duration_s'),
    quotaStorageMb: optionalInt('quota_storage_mb'),
    quotaProfileMb: optionalInt('quota_profile_mb'),
    createdAt,
    updatedAt,
  },
  indices: [{ name: 'users_username_lower_key', unique: true, synchronize: false, columns: ['username'] }],
});

export const RefreshTokenEntity = new EntitySchema<RefreshToken>({
  name: 'RefreshToken',
  tableName: 'refresh_tokens',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    userId: { type: 'uuid', name: 'user_id' },
    familyId: { type: 'uuid', name: 'family_id' },
    tokenHash: { type: 'text', name: 'token_hash', unique: true },
    parentId: { type: 'uuid', name: 'parent_id', nullable: true },
    createdAt,
    lastUsedAt: { type: 'timestamptz', name: 'last_used_at', nullable: true },
    expiresAt: { type: 'timestamptz', name: 'expires_at' },
    usedAt: { type: 'timestamptz', name: 'used_at', nullable: true },
    revokedAt: { type: 'timestamptz', name: 'revoked_at', nullable: true },
  },
});

export const SessionEntity = new EntitySchema<Session>({
  name: 'Session',
  tableName: 'sessions',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    userId: { type: 'uuid', name: 'user_id' },
    state: { type: 'text' },
    app: { type: 'text' },
    url: { type: 'text', nullable: true },
    profile: { type: 'text' },
    quality: { type: 'text' },
    containerId: { type: 'text', name: 'container_id', nullable: true },
    hostname: { type: 'text', nullable: true },
    upstream: { type: 'jsonb', nullable: true },
    createdAt,
    updatedAt,
    endedAt: { type: 'timestamptz', name: 'ended_at', nullable: true },
    failureReason: { type: 'text', name: 'failure_reason', nullable: true },
    instanceId: { type: 'text', name: 'instance_id', nullable: true },
    memoryMb: optionalInt('memory_mb'),
    cpuMillicores: optionalInt('cpu_millicores'),
    idleTimeoutS: optionalInt('idle_timeout_s'),
    deadlineAt: { type: 'timestamptz', name: 'deadline_at', nullable: true },
    idleSince: { type: 'timestamptz', name: 'idle_since', nullable: true },
    pooled: { type: 'boolean', default: false },
  },
});

export const QuotaDefaultsEntity = new EntitySchema<QuotaDefaults>({
  name: 'QuotaDefaults',
  tableName: 'quota_defaults',
  columns: {
    role: { type: 'text', primary: true },
    maxSessions: requiredInt('max_sessions'),
    cpuMillicores: requiredInt('cpu_millicores'),
    memoryMb: requiredInt('memory_mb'),
    idleTimeoutS: requiredInt('idle_timeout_s'),
    maxDurationS: requiredInt('max_duration_s'),
    storageMb: requiredInt('storage_mb'),
    updatedAt,
  },
});

export const AuditEntryEntity = new EntitySchema<AuditEntry>({
  name: 'AuditEntry',
  tableName: 'audit_log',
  columns: {
    id: { type: 'bigint', primary: true, generated: 'increment' },
    at: { type: 'timestamptz', default: () => 'now()' },
    actor: { type: 'text' },
    action: { type: 'text' },
    target: { type: 'text', nullable: true },
    sourceIp: { type: 'inet', name: 'source_ip', nullable: true },
    result: { type: 'text' },
    details: { type: 'jsonb', default: () => "'{}'::jsonb" },
    prevHash: { type: 'text', name: 'prev_hash', unique: true },
    hash: { type: 'text', unique: true },
  },
});

export const ENTITIES = [UserEntity, RefreshTokenEntity, SessionEntity, QuotaDefaultsEntity, AuditEntryEntity];
