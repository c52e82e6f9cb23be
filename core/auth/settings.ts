import { availableParallelism } from 'node:os';
import { z } from 'zod';

/*
 * Account, token and brute-force settings. Production uses the defaults; tests lower the
 * Argon2id cost or shorten lifetimes through AppOptions, never by changing these defaults.
 */

const ms = (def: number, max = 30 * 86_400_000) => z.number().int().positive().max(max).default(def);

export const argon2Schema = z
  .object({
    /** KiB. OWASP's minimum for t=2 is 19456 (19 MiB). */
    memoryCost: z.number().int().min(8).max(1_048_576).default(19_456),
    /**
     * One pass more than OWASP's minimum (t=2): on the 2-core reference host t=2 verifies in
     * about 19 ms, under reliability A2's 20 ms floor; t=3 takes about 28 ms.
     */
    timeCost: z.number().int().min(1).max(10).default(3),
    parallelism: z.number().int().min(1).max(4).default(1),
  })
  .strict();

/*
 * Brute-force limits. A source is an IPv4 address or an IPv6 /64. `accountShortLimit` is the
 * old name of `sourceFreeFailures` (tests written for the two fixed windows relax with it).
 */
const throttleSchema = z
  .object({
    /**
     * Per account, across all sources: password checks in any `accountLongWindowMs` (a rolling
     * window: each check holds one of this many slots for the whole window). 10 per 15 min is
     * reliability A4's bound, under ASVS 2.2.1's 100 per hour. Known sources are not counted.
     */
    accountLongLimit: z.number().int().min(1).max(1_000).default(10),
    accountLongWindowMs: ms(15 * 60_000),
    /** Per account and source: consecutive failures before delays start (default 1: one typo costs nothing). */
    sourceFreeFailures: z.number().int().min(0).max(1_000).optional(),
    /** @deprecated the old name of `sourceFreeFailures`. */
    accountShortLimit: z.number().int().min(0).max(1_000).optional(),
    /** The delay after the first counted failure; it doubles with each further one, up to the max. */
    sourceDelayMs: ms(1_000, 3_600_000),
    sourceDelayMaxMs: ms(60_000, 3_600_000),
    /** Consecutive failures of an account and source are remembered this long from the first. */
    sourceMemoryMs: ms(24 * 3_600_000),
    /** A source with a successful login for an account is known for this long (past the account limit). */
    knownSourceMs: ms(30 * 86_400_000),
    /** Per source: failed logins (any username) before a ban. */
    ipFailLimit: z.number().int().min(1).max(1_000).default(5),
    ipFailWindowMs: ms(15 * 60_000),
    ipBanMs: ms(300_000),
  })
  .strict()
  .refine((t) => t.sourceDelayMaxMs >= t.sourceDelayMs, { path: ['sourceDelayMaxMs'], message: 'must be at least sourceDelayMs' })
  .transform(({ accountShortLimit, sourceFreeFailures, ...rest }) => ({ ...rest, sourceFreeFailures: sourceFreeFailures ?? accountShortLimit ?? 1 }))
  .prefault({});

export const authSettingsSchema = z
  .object({
    argon2: argon2Schema.prefault({}),
    /**
     * Password hashes computed at once (each holds a libuv thread, a core and ~memoryCost KiB):
     * 2, but always one core less than the host has, so the event loop keeps a core to itself.
     */
    hashConcurrency: z.number().int().min(1).max(16).default(Math.max(1, Math.min(2, availableParallelism() - 1))),
    /** Logins waiting for a hashing slot; beyond it they get 503 at once. */
    hashQueueMax: z.number().int().min(1).max(10_000).default(64),
    /** Access tokens live this long (ASVS/our figure: at most 15 min). */
    accessTtlMs: ms(15 * 60_000, 15 * 60_000),
    /** A refresh token family ends this long after its login, rotation or not (ASVS L2: 12 h). */
    refreshAbsoluteMs: ms(12 * 3_600_000),
    /** A refresh token unused for this long is dead (ASVS L2: 30 min of inactivity). */
    refreshIdleMs: ms(30 * 60_000),
    /**
     * Authenticated principals kept per process (core/auth/principal-cache.ts). Every change
     * that ends a token is pushed to all processes at once; the TTL bounds one that is lost,
     * so it stays well under the 1 s revocation figure. 0 turns the cache off.
     */
    principalCache: z
      .object({
        ttlMs: z.number().int().min(0).max(500).default(500),
        maxEntries: z.number().int().min(1).max(1_000_000).default(10_000),
      })
      .strict()
      .prefault({}),
    /** Brute-force limits (core/auth/throttle.ts; docs/decisions.md, "Brute force and lockout"). */
    throttle: throttleSchema,
  })
  .strict();

export type AuthSettings = z.output<typeof authSettingsSchema>;
export type AuthSettingsInput = z.input<typeof authSettingsSchema>;
export type Argon2Params = z.output<typeof argon2Schema>;

export function authSettings(input: AuthSettingsInput = {}): AuthSettings {
  return authSettingsSchema.parse(input);
}
