import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import type { KeyValueStore } from '../store/kv.js';
import { loginFailed, refuseIf, type LoginDeps } from './login.js';
import type { TokenPair } from './token-service.js';
import { sha256Hex } from './tokens.js';
import { traced } from '../../lib/tracing.js';
import { logins } from '../metrics/registry.js';

/** What a login that passed its first factor waits with, server-side, for its second. */
export interface PendingLogin {
  readonly userId: string;
  readonly username: string;
  /** The plugin that passed the first factor. */
  readonly provider: string;
  /** The redirect or device flow, when the first factor was one. */
  readonly flow: string | null;
  /** The factors that said they apply, in registration order. */
  readonly factors: readonly string[];
  /** The account's token epoch at the first factor: a logout-everywhere, disable or reset since ends the challenge. */
  readonly tokenEpoch: number;
}

const pendingSchema = z.strictObject({
  userId: z.string(),
  username: z.string(),
  provider: z.string(),
  flow: z.string().nullable(),
  factors: z.array(z.string()),
  tokenEpoch: z.number().int(),
});

export interface ChallengeLimits {
  readonly ttlMs: number;
  readonly tries: number;
}

export const DEFAULT_CHALLENGE_LIMITS: ChallengeLimits = Object.freeze({ ttlMs: 5 * 60_000, tries: 5 });

/** A challenge id as clients send it back: 32 random bytes, base64url. */
const ID_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Second-factor challenges in the KV store, keyed by the SHA-256 of the id (the id itself
 * is never stored or logged). Each lives `ttlMs`, allows `tries` attempts (an atomic
 * counter, so concurrent guesses cannot exceed it) and is used once: the attempt that
 * succeeds takes the record with GETDEL, and of two concurrent successes only one gets it.
 */
export class SecondFactorChallenges {
  constructor(
    private readonly kv: KeyValueStore,
    readonly limits: ChallengeLimits = DEFAULT_CHALLENGE_LIMITS,
  ) {}

  async issue(pending: PendingLogin): Promise<{ challengeId: string; expiresInS: number }> {
    const challengeId = randomBytes(32).toString('base64url');
    await this.kv.set(recordKey(challengeId), JSON.stringify(pending), { ttlMs: this.limits.ttlMs });
    return { challengeId, expiresInS: Math.round(this.limits.ttlMs / 1000) };
  }

  /** The login waiting under this id, or null (unknown, expired, used, out of tries). Spends nothing. */
  async find(challengeId: string): Promise<PendingLogin | null> {
    if (!ID_SHAPE.test(challengeId)) return null;
    const raw = await this.kv.get(recordKey(challengeId));
    return raw === null ? null : parse(raw);
  }

  /** Spends one try: the tries left after it, or null when there was none left (the challenge ends). */
  async spend(challengeId: string): Promise<number | null> {
    const used = await this.kv.incr(triesKey(challengeId), this.limits.ttlMs);
    if (used.count <= this.limits.tries) return this.limits.tries - used.count;
    await this.kv.del(recordKey(challengeId));
    return null;
  }

  /** Takes the challenge for good; false when someone else took it (or it expired) meanwhile. */
  async consume(challengeId: string): Promise<boolean> {
    return (await this.kv.getDel(recordKey(challengeId))) !== null;
  }

  /** Ends a challenge (its last try was refused). */
  async drop(challengeId: string): Promise<void> {
    await this.kv.del(recordKey(challengeId));
  }
}

function recordKey(id: string): string {
  return `login:2fa:c:${sha256Hex(id)}`;
}

function triesKey(id: string): string {
  return `login:2fa:t:${sha256Hex(id)}`;
}

function parse(raw: string): PendingLogin | null {
  try {
    const r = pendingSchema.safeParse(JSON.parse(raw));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** What `POST /v1/login/second-factor` hands over (already shape-checked by the route). */
export interface SecondFactorAttempt {
  readonly challengeId: string;
  readonly factor: string;
  readonly response: string;
  readonly ip: string;
}

const CHALLENGE_INVALID = 'the challenge is unknown, expired, used or out of tries; log in again';

/**
 * Answers a second-factor challenge: the IP ban and the account's attempt budget first (as
 * for passwords), then one try of the challenge, then the factor's `verify`. A success takes
 * the challenge (single use) and issues the token pair; a refusal is audited, counted against
 * the IP, and says how many tries are left.
 */
export async function verifySecondFactor(deps: LoginDeps, attempt: SecondFactorAttempt, log: Logger): Promise<TokenPair> {
  const { challengeId, ip } = attempt;
  await refuseIf(deps, await deps.throttle.checkIp(ip), { username: '', ip }, log);
  const pending = await deps.challenges.find(challengeId);
  if (!pending) {
    await loginFailed(deps, { target: null, ip, throttleAs: null, details: { reason: 'challenge-invalid' } }, log);
    throw new AppError('AUTH_CHALLENGE_INVALID', CHALLENGE_INVALID);
  }
  const who = { username: pending.username, ip };
  const audited = { provider: pending.provider, factor: attempt.factor, ...(pending.flow ? { flow: pending.flow } : {}) };
  await refuseIf(deps, await deps.throttle.reserveAccount(pending.username, ip), who, log);
  const left = await deps.challenges.spend(challengeId);
  if (left === null) {
    await loginFailed(deps, { target: pending.username, ip, throttleAs: pending.username, details: { reason: 'challenge-out-of-tries', ...audited } }, log);
    throw new AppError('AUTH_CHALLENGE_INVALID', CHALLENGE_INVALID);
  }
  const factor = pending.factors.includes(attempt.factor) ? deps.plugins.auth.secondFactors.find((f) => f.id === attempt.factor) : undefined;
  const subject = { userId: pending.userId, username: pending.username, provider: pending.provider, ip };
  const verdict = factor ? await traced('auth.second_factor_verify', () => factor.verify(subject, attempt.response), { attributes: { 'hackstream.auth.factor': factor.id } }) : { ok: false as const, reason: 'factor-not-offered' };
  if (!verdict.ok) {
    if (left === 0) await deps.challenges.drop(challengeId);
    await loginFailed(deps, { target: pending.username, ip, throttleAs: pending.username, details: { reason: verdict.reason, attemptsLeft: left, ...audited } }, log);
    throw new AppError('AUTH_SECOND_FACTOR_INVALID', 'the second factor was not accepted', { details: { attempts_left: left } });
  }
  const user = (await deps.challenges.consume(challengeId)) ? await deps.users.findById(pending.userId) : null;
  if (!user || user.disabled || user.tokenEpoch !== pending.tokenEpoch) {
    const reason = !user ? 'challenge-used' : user.disabled ? 'disabled' : 'tokens-revoked';
    await loginFailed(deps, { target: pending.username, ip, throttleAs: pending.username, details: { reason, ...audited } }, log);
    throw new AppError('AUTH_CHALLENGE_INVALID', CHALLENGE_INVALID);
  }
  await deps.throttle.succeeded(pending.username, ip);
  const pair = await traced('auth.token_issue', () => deps.tokens.login(user, ip, audited), { attributes: { 'hackstream.user.id': user.id } });
  log.info({ userId: user.id, ...audited }, 'login');
  logins.inc({ outcome: 'success' });
  return pair;
}
