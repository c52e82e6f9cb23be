import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import { logins } from '../metrics/registry.js';
import type { AuthDecision } from '../plugin/auth-chain.js';
import type { PluginHost } from '../plugin/host.js';
import type { User } from '../store/entities.js';
import type { Audit } from './audit.js';
import { provisionIdentity } from './provision.js';
import type { SecondFactorChallenges } from './second-factor.js';
import type { Semaphore } from './semaphore.js';
import type { LoginThrottle, Refusal } from './throttle.js';
import type { TokenPair, TokenService } from './token-service.js';
import type { Users } from './users.js';
import { annotate, traced } from '../../lib/tracing.js';

const INVALID = 'invalid username or password';

export interface LoginDeps {
  plugins: PluginHost;
  users: Users;
  tokens: TokenService;
  throttle: LoginThrottle;
  audit: Audit;
  /** Logins checking a password at once (the hashing pool's size). */
  slots: Semaphore;
  challenges: SecondFactorChallenges;
}

/** How the first factor was passed, for audit rows and the second factor's subject. */
export interface FirstFactor {
  readonly provider: string;
  /** The redirect or device flow; null for a password login. */
  readonly flow: string | null;
  readonly ip: string;
}

/**
 * One login attempt, in this order: IP ban (read only), the account's attempt budget
 * (counted before hashing), a hashing slot (bounded queue), the IP ban again (it may have
 * started while this attempt queued), then the auth provider chain. A refused attempt never
 * reaches a provider, so nothing is hashed for it. Unknown user, wrong password, disabled
 * account and an account the provider may not use all answer the same 401.
 */
export async function login(deps: LoginDeps, attempt: { username: string; password: string; ip: string }, log: Logger): Promise<TokenPair> {
  const { username, password, ip } = attempt;
  await refuseIf(deps, await deps.throttle.checkIp(ip), attempt, log);
  await refuseIf(deps, await deps.throttle.reserveAccount(username, ip), attempt, log);
  const decision = await deps.slots.run(async () => {
    await refuseIf(deps, await deps.throttle.checkIp(ip), attempt, log);
    return traced('auth.password_verify', () => deps.plugins.auth.authenticate({ username, password, ip }));
  });
  annotate({ 'hackstream.auth.provider': decision.provider ?? 'none', 'hackstream.auth.result': decision.result });
  const account = await resolveAccount(deps, decision, ip);
  if (account.ok && decision.result === 'ok') {
    return finishLogin(deps, account.user, { provider: decision.provider, flow: null, ip }, username, log);
  }
  const reason = account.ok ? 'denied' : account.reason;
  await loginFailed(deps, { target: username, ip, throttleAs: username, details: { reason, provider: decision.provider } }, log);
  throw new AppError('AUTH_INVALID_CREDENTIALS', INVALID);
}

export type ResolvedAccount = { readonly ok: true; readonly user: User } | { readonly ok: false; readonly reason: string; readonly userId: string | null };

/**
 * The account a first factor's verdict stands for: an existing account by id, or an external
 * identity provisioned just in time. Only an enabled account comes out.
 */
export async function resolveAccount(deps: Pick<LoginDeps, 'users' | 'audit'>, decision: AuthDecision, ip: string): Promise<ResolvedAccount> {
  if (decision.result === 'deny') return { ok: false, reason: decision.reason, userId: null };
  if ('identity' in decision) {
    const outcome = await provisionIdentity(deps, decision.identity, { provider: decision.provider, ip });
    return outcome.ok ? { ok: true, user: outcome.user } : { ok: false, reason: outcome.reason, userId: outcome.userId };
  }
  const user = await deps.users.findById(decision.userId);
  if (!user) return { ok: false, reason: 'unknown-account', userId: null };
  if (user.disabled) return { ok: false, reason: 'disabled', userId: user.id };
  return { ok: true, user };
}

/**
 * After a first factor passed for an enabled account: asks every second factor whether it
 * applies (all at once, each fail-closed by the host). When one does, no token: the answer
 * is 401 AUTH_SECOND_FACTOR_REQUIRED with a fresh challenge. Otherwise the token pair.
 */
export async function finishLogin(deps: LoginDeps, user: User, first: FirstFactor, throttleAs: string, log: Logger): Promise<TokenPair> {
  const subject = { userId: user.id, username: user.username, provider: first.provider, ip: first.ip };
  const factors = deps.plugins.auth.secondFactors;
  const needed = await traced('auth.second_factor_check', () => Promise.all(factors.map((f) => f.required(subject))));
  const required = factors.filter((_, i) => needed[i]).map((f) => f.id);
  if (required.length > 0) {
    const { challengeId, expiresInS } = await deps.challenges.issue({
      userId: user.id,
      username: user.username,
      provider: first.provider,
      flow: first.flow,
      factors: required,
      tokenEpoch: user.tokenEpoch,
    });
    log.info({ userId: user.id, provider: first.provider, factors: required }, 'second factor required');
    logins.inc({ outcome: 'second_factor_required' });
    // details are the wire form (snake_case, as every /v1 key).
    throw new AppError('AUTH_SECOND_FACTOR_REQUIRED', 'a second factor is required', { details: { challenge_id: challengeId, factors: required, expires_in: expiresInS } });
  }
  await deps.throttle.succeeded(throttleAs, first.ip);
  const pair = await traced('auth.token_issue', () => deps.tokens.login(user, first.ip, { provider: first.provider, ...(first.flow ? { flow: first.flow } : {}) }), { attributes: { 'hackstream.user.id': user.id } });
  log.info({ userId: user.id, provider: first.provider, ...(first.flow ? { flow: first.flow } : {}) }, 'login');
  logins.inc({ outcome: 'success' });
  return pair;
}

/** A refused login: audited `authn_login_fail`, and (`throttleAs`) counted against the client IP, where a ban may start. */
export async function loginFailed(
  deps: Pick<LoginDeps, 'throttle' | 'audit'>,
  failure: { target: string | null; ip: string; throttleAs: string | null; details: Record<string, unknown> },
  log: Logger,
): Promise<void> {
  // Only attempts at a guessable secret (passwords, codes) count towards the IP ban.
  const banned = failure.throttleAs === null ? false : await deps.throttle.failed(failure.ip, failure.throttleAs);
  await deps.audit.record({ actor: null, action: 'authn_login_fail', target: failure.target, sourceIp: failure.ip, result: 'failure', details: failure.details });
  if (banned) {
    await deps.audit.record({ actor: null, action: 'excess_rate_limit_exceeded', target: failure.ip, sourceIp: failure.ip, result: 'failure', details: { scope: 'ip' } });
    log.warn({ ip: failure.ip }, 'client IP banned after repeated failed logins');
  }
  log.info({ reason: failure.details.reason }, 'login failed');
  logins.inc({ outcome: 'failure' });
}

export async function refuseIf(deps: Pick<LoginDeps, 'audit'>, refusal: Refusal | null, attempt: { username: string; ip: string }, log: Logger): Promise<void> {
  if (!refusal) return;
  logins.inc({ outcome: 'throttled' });
  if (refusal.started && refusal.scope === 'account') {
    await deps.audit.record({
      actor: null,
      action: 'authn_login_lock',
      target: attempt.username,
      sourceIp: attempt.ip,
      result: 'failure',
      details: { retryAfterS: refusal.retryAfterS },
    });
    log.warn({ retryAfterS: refusal.retryAfterS }, 'account login attempts throttled');
  }
  throw new AppError('RATE_LIMITED', 'too many login attempts, try again later', { headers: { 'Retry-After': String(refusal.retryAfterS) } });
}
