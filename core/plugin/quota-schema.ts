import { z } from 'zod';
import type { Quota } from './extensions.js';

/** The bounds of each quota field; shared by quota policies and core's per-user overrides. */
export const quotaFields = {
  maxSessions: z.number().int().min(0).max(100),
  cpus: z.number().min(0.1).max(256),
  memoryMb: z.number().int().min(128).max(1_048_576),
  idleTimeoutMinutes: z.number().int().min(1).max(10_080),
  maxDurationMinutes: z.number().int().min(1).max(43_200),
  storageMb: z.number().int().min(0).max(10_485_760),
  profileMb: z.number().int().min(32).max(1_048_576),
} satisfies Record<keyof Quota, z.ZodType<number>>;

/** A complete quota. */
export const quotaSchema = z.object(quotaFields).strict();

/** A per-user override: any subset of the fields. */
export const quotaOverrideSchema = quotaSchema.partial();

/** A profile's size when a policy's defaults name none. */
export const DEFAULT_PROFILE_MB = 512;

/** A quota whose every field defaults to `defaults` (an operator sets only what differs). */
export function quotaWithDefaults(defaults: Quota) {
  return z
    .object({
      maxSessions: quotaFields.maxSessions.default(defaults.maxSessions),
      cpus: quotaFields.cpus.default(defaults.cpus),
      memoryMb: quotaFields.memoryMb.default(defaults.memoryMb),
      idleTimeoutMinutes: quotaFields.idleTimeoutMinutes.default(defaults.idleTimeoutMinutes),
      maxDurationMinutes: quotaFields.maxDurationMinutes.default(defaults.maxDurationMinutes),
      storageMb: quotaFields.storageMb.default(defaults.storageMb),
      profileMb: quotaFields.profileMb.default(defaults.profileMb ?? DEFAULT_PROFILE_MB),
    })
    .strict()
    .prefault({});
}

/** `base` with every field the override sets (undefined fields keep the base value). */
export function applyOverride(base: Quota, override: Readonly<Partial<Quota>> | undefined): Quota {
  if (!override) return base;
  const merged: { -readonly [K in keyof Quota]: Quota[K] } = { ...base };
  for (const key of Object.keys(base) as (keyof Quota)[]) {
    const value = override[key];
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}
