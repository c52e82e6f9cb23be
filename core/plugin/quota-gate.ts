import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import type { Quota, QuotaDecision, QuotaPolicy, QuotaRequest, QuotaSubject } from './contract.js';
import type { Owned } from './registrations.js';
import { withTimeout } from './timeout.js';
import { pluginErrors } from '../metrics/registry.js';

export interface HostQuota {
  /** The active policy's decision; with no policy, or a failing one, the request is refused. */
  check(subject: QuotaSubject, request: QuotaRequest): Promise<QuotaDecision>;
  /** The active policy's limits; throws AppError SERVICE_UNAVAILABLE when there is none or it fails. */
  effectiveQuota(subject: QuotaSubject): Promise<Quota>;
  /** The plugin whose policy is active, if any. */
  readonly policy: string | null;
}

const UNAVAILABLE = { allowed: false, code: 'QUOTA_UNAVAILABLE', message: 'quotas cannot be checked right now' } as const;

export function createQuotaGate(active: Owned<QuotaPolicy> | undefined, logger: Logger, timeoutMs: number): HostQuota {
  if (!active) logger.warn('no quota policy is enabled; every quota check is refused');
  return {
    policy: active?.plugin ?? null,
    async check(subject, request) {
      if (!active) return UNAVAILABLE;
      try {
        const decision: unknown = await withTimeout(timeoutMs, () => active.value.check(subject, request));
        return checked(decision);
      } catch (err) {
        logger.error({ err, plugin: active.plugin }, 'quota policy failed; refusing');
        pluginErrors.inc({ plugin: active.plugin, extension: 'quota' });
        return UNAVAILABLE;
      }
    },
    async effectiveQuota(subject) {
      if (!active) throw new AppError('SERVICE_UNAVAILABLE', 'no quota policy is enabled');
      try {
        return await withTimeout(timeoutMs, () => active.value.effectiveQuota(subject));
      } catch (err) {
        logger.error({ err, plugin: active.plugin }, 'quota policy failed');
        pluginErrors.inc({ plugin: active.plugin, extension: 'quota' });
        throw new AppError('SERVICE_UNAVAILABLE', 'quotas cannot be read right now', { cause: err });
      }
    },
  };
}

function checked(decision: unknown): QuotaDecision {
  const d = decision as Record<string, unknown> | null | undefined;
  if (d?.allowed === true) return { allowed: true };
  if (d?.allowed === false && d.code === 'QUOTA_EXCEEDED' && typeof d.message === 'string') {
    return { allowed: false, code: 'QUOTA_EXCEEDED', message: d.message };
  }
  throw new Error(`invalid decision ${JSON.stringify(decision)}`);
}
