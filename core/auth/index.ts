import type { DataSource } from 'typeorm';
import type { Logger } from '../../lib/log.js';
import type { AuditEvent, PluginServices } from '../plugin/contract.js';
import type { PluginHost } from '../plugin/host.js';
import type { KeyValueStore } from '../store/kv.js';
import { createAccountsService } from './accounts.js';
import { createAudit, pluginAuditService, type Audit } from './audit.js';
import { AuthFlows } from './flows.js';
import { login, type LoginDeps } from './login.js';
import { traced } from '../../lib/tracing.js';
import { PasswordHasher } from './passwords.js';
import { PrincipalCache } from './principal-cache.js';
import { createQuotas, usageService, type Quotas } from './quotas.js';
import { Revocations } from './revocations.js';
import { SecondFactorChallenges, verifySecondFactor, type SecondFactorAttempt } from './second-factor.js';
import { Semaphore } from './semaphore.js';
import { authSettings, type AuthSettings, type AuthSettingsInput } from './settings.js';
import { LoginThrottle } from './throttle.js';
import { TokenService, type TokenPair } from './token-service.js';
import { Users } from './users.js';

export type { Principal, TokenPair } from './token-service.js';
export type { AuthSettings, AuthSettingsInput } from './settings.js';
export { bootstrapNotice, BootstrapError, ensureFirstAdmin, type BootstrapInput, type BootstrapResult } from './bootstrap.js';
export { userView, usernameSchema, type UserView } from './users.js';
export type { DeviceGrant } from './flows.js';

/** Accounts, tokens, brute-force limits, quotas and the audit, as the API uses them. */
export interface ControlPlane {
  readonly settings: AuthSettings;
  readonly hasher: PasswordHasher;
  readonly users: Users;
  readonly tokens: TokenService;
  /** Authenticated principals of this process (size and state for metrics and tests). */
  readonly principals: PrincipalCache;
  readonly throttle: LoginThrottle;
  readonly quotas: Quotas;
  readonly audit: Audit;
  /** For the plugin host: local accounts (auth-local) and usage (quota policies). */
  readonly services: PluginServices;
  login(attempt: { username: string; password: string; ip: string }, log: Logger): Promise<TokenPair>;
  /** Answers a second-factor challenge a login (password or flow) was given. */
  secondFactor(attempt: SecondFactorAttempt, log: Logger): Promise<TokenPair>;
  /** Redirect and device flows. */
  readonly flows: AuthFlows;
  /** An admin removes the user's second factors (each plugin audits its own); the ids of those removed. */
  resetSecondFactors(userId: string, by: { userId: string; username: string; ip: string }): Promise<string[]>;
}

export interface ControlPlaneDeps {
  dataSource: DataSource;
  kv: KeyValueStore;
  logger: Logger;
  settings?: AuthSettingsInput;
  /**
   * The plugin host, read when first needed: the host is started with `services` from this
   * control plane, so it exists only after it.
   */
  plugins: () => PluginHost;
}

export function createControlPlane(deps: ControlPlaneDeps): ControlPlane {
  const settings = authSettings(deps.settings);
  const logger = deps.logger.child({ component: 'accounts' });
  const hasher = new PasswordHasher(settings.argon2, { concurrency: settings.hashConcurrency, queueMax: settings.hashQueueMax });
  const audit = createAudit(deps.dataSource, (event: AuditEvent) => deps.plugins().audit.emit(event));
  const cache = new PrincipalCache(settings.principalCache);
  const revocations = new Revocations(deps.kv, cache, logger);
  const users = new Users(deps.dataSource, hasher, audit, (id) => revocations.userChanged(id));
  const tokens = new TokenService(deps.dataSource, deps.kv, audit, settings, logger, { cache, revocations });
  const throttle = new LoginThrottle(deps.kv, settings.throttle);
  const usage = usageService(deps.dataSource);
  const slots = new Semaphore(settings.hashConcurrency, settings.hashQueueMax);
  const challenges = new SecondFactorChallenges(deps.kv);
  const loginDeps = (): LoginDeps => ({ plugins: deps.plugins(), users, tokens, throttle, audit, slots, challenges });
  let quotas: Quotas | undefined;
  let flows: AuthFlows | undefined;
  return {
    settings,
    hasher,
    users,
    tokens,
    principals: cache,
    throttle,
    audit,
    get quotas() {
      quotas ??= createQuotas({ plugins: deps.plugins(), kv: deps.kv, usage, logger });
      return quotas;
    },
    services: { accounts: createAccountsService(users, hasher, logger), usage, audit: pluginAuditService(audit) },
    login: (attempt, log) => traced('auth.login', () => login(loginDeps(), attempt, log)),
    secondFactor: (attempt, log) => traced('auth.login.second_factor', () => verifySecondFactor(loginDeps(), attempt, log)),
    get flows() {
      flows ??= new AuthFlows(loginDeps(), deps.kv);
      return flows;
    },
    async resetSecondFactors(userId, by) {
      const removed: string[] = [];
      for (const f of deps.plugins().auth.secondFactors) if (await f.reset(userId, by)) removed.push(f.id);
      return removed;
    },
  };
}
