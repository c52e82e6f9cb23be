import { z } from 'zod';
import { definePlugin, type Quota, type QuotaSubject } from '../../core/plugin/contract.js';
import { applyOverride, quotaWithDefaults } from '../../core/plugin/quota-schema.js';

const USER: Quota = { maxSessions: 2, cpus: 1, memoryMb: 2048, idleTimeoutMinutes: 30, maxDurationMinutes: 480, storageMb: 1024, profileMb: 512 };
const ADMIN: Quota = { maxSessions: 4, cpus: 2, memoryMb: 4096, idleTimeoutMinutes: 60, maxDurationMinutes: 720, storageMb: 4096, profileMb: 1024 };

/** Per-role defaults; each field may be set alone, the others keep these values. */
const options = z.object({ user: quotaWithDefaults(USER), admin: quotaWithDefaults(ADMIN) }).strict();

/**
 * The default quota policy: per-role limits from its options, with the per-user override
 * an admin set on top. Refuses a new session at the concurrent-session limit, and a
 * persistent one when the user's storage is used up.
 */
export default definePlugin({
  name: 'quota-default',
  version: '0.1.0',
  contract: 2,
  configSchema: options,
  exampleConfig: { user: { maxSessions: 2, memoryMb: 2048 }, admin: { maxSessions: 4 } },
  async init({ config, register, services }) {
    const effective = (s: QuotaSubject): Quota => applyOverride(config[s.role], s.override);
    register.quotaPolicy({
      async effectiveQuota(subject) {
        return effective(subject);
      },
      async check(subject, request) {
        const quota = effective(subject);
        const use = await services.usage.current(subject.userId);
        if (use.sessions >= quota.maxSessions) {
          return { allowed: false, code: 'QUOTA_EXCEEDED', message: `at most ${quota.maxSessions} sessions may run at once` };
        }
        if (request.profile === 'persist' && use.storageMb >= quota.storageMb) {
          return { allowed: false, code: 'QUOTA_EXCEEDED', message: `the storage quota of ${quota.storageMb} MB is used up` };
        }
        return { allowed: true };
      },
    });
  },
});
