import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import type { PluginHost } from '../plugin/host.js';
import type { Audit } from './audit.js';
import type { Semaphore } from './semaphore.js';
import type { LoginThrottle, Refusal } from './throttle.js';
import type { TokenPair, TokenService } from './token-service.js';
import type { Users } from './users.js';

const INVALID = 'invalid username or password';

export interface LoginDeps {
  plugins: PluginHost;
  users: Users;
  tokens: TokenService;
  throttle: LoginThrottle;
  audit: Audit;
  /** Logins checking a password at once (the hashing pool's size). */
  slots: Semaphore;
}

/**
 * One login attempt, in this order: IP ban (read only), the account's attempt budget
 * (counted before hashing), a hashing slot (bounded queue), the IP ban again (it may have
 * started while this attempt queued), then the auth provider chain. A refused attempt never
 * reaches a provider, so nothing is hashed for it. Unknown user, wrong password and disabled
 * account all answer the same 401.
 */
export async function login(deps: LoginDeps, attempt: { username: string; password: string; ip: string }, log: Logger): Promise<TokenPair> {
  const { username, password, ip } = attempt;
  await refuseIf(deps, await deps.throttle.checkIp(ip), attempt, log);
  await refuseIf(deps, await deps.throttle.reserveAccount(username, ip), attempt, log);
  const decision = await deps.slots.run(async () => {
    await refuseIf(deps, await deps.throttle.checkIp(ip), attempt, log);
    return deps.plugins.auth.authenticate({ username, password, ip });
  });
  const user = decision.result === 'ok' ? await deps.users.findById(decision.userId) : null;
  if (decision.result === 'ok' && user && !user.disabled) {
    await deps.throttle.succeeded(username, ip);
    const pair = await deps.tokens.login(user, ip, { provider: decision.provider });
    log.info({ userId: user.id, provider: decision.provider }, 'login');
    return pair;
  }
  const reason = decision.result === 'deny' ? decision.reason : user ? 'disabled' : 'unknown-account';
  const banned = await deps.throttle.failed(ip, username);
  await deps.audit.record({
    actor: null,
    action: 'authn_login_fail',
    target: username,
    sourceIp: ip,
    result: 'failure',
    details: { reason, provider: decision.provider },
  });
  if (banned) {
    await deps.audit.record({ actor: null, action: 'excess_rate_limit_exceeded', target: ip, sourceIp: ip, result: 'failure', details: { scope: 'ip' } });
    log.warn({ ip }, 'client IP banned after repeated failed logins');
  }
  log.info({ reason }, 'login failed');
  throw new AppError('AUTH_INVALID_CREDENTIALS', INVALID);
}

async function refuseIf(deps: LoginDeps, refusal: Refusal | null, attempt: { username: string; ip: string }, log: Logger): Promise<void> {
  if (!refusal) return;
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
