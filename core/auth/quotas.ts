import type { DataSource } from 'typeorm';
import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import type { Quota, QuotaRequest, QuotaSubject, Usage, UsageService } from '../plugin/contract.js';
import type { PluginHost } from '../plugin/host.js';
import type { KeyValueStore } from '../store/kv.js';
import type { User } from '../store/entities.js';

/*
 * Quotas as the API shows them use the plugin contract's units (cores, minutes); the users
 * table stores per-user overrides in integer millicores and seconds. These map between them.
 */

type QuotaColumns = Pick<
  User,
  'quotaMaxSessions' | 'quotaCpuMillicores' | 'quotaMemoryMb' | 'quotaIdleTimeoutS' | 'quotaMaxDurationS' | 'quotaStorageMb' | 'quotaProfileMb'
>;

/** A change to a user's overrides: a number sets a field, null returns it to the role default. */
export type QuotaPatch = { [K in keyof Quota]?: number | null };

const FIELDS: { [K in keyof Quota]-?: { column: keyof QuotaColumns; toDb: (v: number) => number; fromDb: (v: number) => number } } = {
  maxSessions: { column: 'quotaMaxSessions', toDb: (v) => v, fromDb: (v) => v },
  cpus: { column: 'quotaCpuMillicores', toDb: (v) => Math.round(v * 1000), fromDb: (v) => v / 1000 },
  memoryMb: { column: 'quotaMemoryMb', toDb: (v) => v, fromDb: (v) => v },
  idleTimeoutMinutes: { column: 'quotaIdleTimeoutS', toDb: (v) => v * 60, fromDb: (v) => Math.round(v / 60) },
  maxDurationMinutes: { column: 'quotaMaxDurationS', toDb: (v) => v * 60, fromDb: (v) => Math.round(v / 60) },
  storageMb: { column: 'quotaStorageMb', toDb: (v) => v, fromDb: (v) => v },
  profileMb: { column: 'quotaProfileMb', toDb: (v) => v, fromDb: (v) => v },
};

/** The user's overrides in API units (only the fields that are set). */
export function quotaOverride(user: QuotaColumns): Partial<Quota> {
  const out: { -readonly [K in keyof Quota]?: number } = {};
  for (const [field, f] of Object.entries(FIELDS) as [keyof Quota, (typeof FIELDS)[keyof Quota]][]) {
    const v = user[f.column];
    if (v !== null) out[field] = f.fromDb(v);
  }
  return out;
}

/** The column values a patch writes. */
export function quotaColumns(patch: QuotaPatch): Partial<QuotaColumns> {
  const out: Partial<Record<keyof QuotaColumns, number | null>> = {};
  for (const [field, f] of Object.entries(FIELDS) as [keyof Quota, (typeof FIELDS)[keyof Quota]][]) {
    const v = patch[field];
    if (v !== undefined) out[f.column] = v === null ? null : f.toDb(v);
  }
  return out;
}

export function quotaSubject(user: Pick<User, 'id' | 'role'> & QuotaColumns): QuotaSubject {
  return { userId: user.id, role: user.role, override: quotaOverride(user) };
}

/** What a user uses now, from the sessions table (storage is accounted from issue 4 on). */
export function usageService(dataSource: DataSource): UsageService {
  return {
    async current(userId: string): Promise<Usage> {
      const rows: unknown = await dataSource.query('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1 AND ended_at IS NULL', [userId]);
      const n = Array.isArray(rows) ? (rows[0] as { n?: unknown } | undefined)?.n : undefined;
      if (typeof n !== 'number') throw new Error('usage: unexpected answer from the database');
      return { sessions: n, storageMb: 0 };
    },
  };
}

export interface Quotas {
  /** The limits that apply to the user and what they use now. */
  describe(user: User): Promise<{ quota: Quota; usage: Usage }>;
  /**
   * Asks the quota policy and, if it allows, runs `claim` (which records the new use,
   * e.g. inserts the session row) while holding the user's quota lock: concurrent admits
   * for one user run one at a time, so the usage the policy reads cannot change under it.
   * Throws QUOTA_EXCEEDED (409) or QUOTA_UNAVAILABLE (503) when refused. `log`: the
   * request's logger (its lines carry the request id).
   */
  admit<T>(user: User, request: QuotaRequest, claim: () => Promise<T>, log?: Logger): Promise<T>;
}

/** Longest a policy check plus a claim may hold a user's lock. */
const ADMIT_LOCK_TTL_MS = 30_000;
const ADMIT_WAIT_MS = 10_000;

export function createQuotas(deps: { plugins: PluginHost; kv: KeyValueStore; usage: UsageService; logger: Logger }): Quotas {
  return {
    async describe(user) {
      const [quota, usage] = await Promise.all([deps.plugins.quota.effectiveQuota(quotaSubject(user)), deps.usage.current(user.id)]);
      return { quota, usage };
    },
    admit(user, request, claim, log = deps.logger) {
      return deps.kv.withLock(
        `quota:${user.id}`,
        ADMIT_LOCK_TTL_MS,
        async () => {
          const decision = await deps.plugins.quota.check(quotaSubject(user), request);
          if (!decision.allowed) {
            log.info({ userId: user.id, code: decision.code }, 'quota refused');
            throw new AppError(decision.code, decision.message);
          }
          return claim();
        },
        { waitMs: ADMIT_WAIT_MS },
      );
    },
  };
}
