/**
 * The core services a plugin may use, each a small interface. Part of the public plugin
 * contract; core supplies the implementations (accounts and usage come from the store).
 */

export type PasswordCheck =
  | { readonly ok: true; readonly userId: string }
  | { readonly ok: false; readonly reason: 'unknown-user' | 'wrong-password' | 'disabled' };

/** Local accounts. */
export interface AccountsService {
  /**
   * Checks a password against the local account. Takes the same time whether or not the
   * user exists (a dummy hash is verified for unknown users).
   */
  verifyPassword(username: string, password: string): Promise<PasswordCheck>;
}

/** What a user uses right now. */
export interface Usage {
  /** Sessions not yet stopped or failed. */
  readonly sessions: number;
  readonly storageMb: number;
}

export interface UsageService {
  current(userId: string): Promise<Usage>;
}

export interface PluginServices {
  readonly accounts: AccountsService;
  readonly usage: UsageService;
}

/**
 * Services for a start-up where core has not wired the real ones yet: every call fails,
 * so auth and quota fail closed instead of letting anyone in.
 */
export function unavailableServices(): PluginServices {
  const fail = (what: string) => () => Promise.reject(new Error(`${what} service is not available`));
  return {
    accounts: { verifyPassword: fail('accounts') },
    usage: { current: fail('usage') },
  };
}
