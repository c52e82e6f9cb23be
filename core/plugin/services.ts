/**
 * The core services a plugin may use, each a small interface. Part of the public plugin
 * contract; core supplies the implementations (accounts and usage come from the store).
 */

export type PasswordCheck =
  | { readonly ok: true; readonly userId: string }
  | { readonly ok: false; readonly reason: 'unknown-user' | 'wrong-password' | 'disabled' };

/** An account as plugins see it (no secrets). `source`: null for a local account. */
export interface AccountView {
  readonly id: string;
  readonly username: string;
  readonly role: 'admin' | 'user';
  readonly disabled: boolean;
  readonly source: string | null;
}

/** Accounts. */
export interface AccountsService {
  /**
   * Checks a password against the local account. Takes the same time whether or not the
   * user exists (a dummy hash is verified for unknown users). An account owned by an
   * external source has no local password: `unknown-user`.
   */
  verifyPassword(username: string, password: string): Promise<PasswordCheck>;
  /** The account with this id, or null. */
  findById(userId: string): Promise<AccountView | null>;
}

/** An audit row a plugin writes; `action` is `<plugin name with - as _>.<event>`, e.g. `mfa_totp.reset` (AUDIT_ACTION_PATTERN). */
export interface PluginAuditEntry {
  readonly action: string;
  /** The user who acted (null: anonymous or the system). */
  readonly actor: string | null;
  readonly target: string | null;
  readonly ip: string | null;
  readonly result: 'success' | 'failure';
  /** Never a secret: codes, tokens and keys stay out of audit. */
  readonly details?: Readonly<Record<string, string | number | boolean | null>>;
}

export interface AuditService {
  /** Appends a row to the hash-chained audit (and the audit sinks). */
  record(entry: PluginAuditEntry): Promise<void>;
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
  readonly audit: AuditService;
}

/**
 * The plugin's own storage, namespaced by its name. `sql` runs in the plugin's own
 * PostgreSQL schema (`plugin_<name with - as _>`, on the search path), created with the
 * plugin's `migrations` applied in order at start-up; `kv` is the shared KV store (Redis or
 * the embedded one) under the prefix `plugin:<name>:`, for short-lived state.
 */
export interface PluginStorage {
  readonly sql: {
    /** Parameterised ($1, $2…) SQL; rows as objects. Runs in one transaction when given several statements via `transaction`. */
    query<Row extends Record<string, unknown> = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<Row[]>;
    transaction<T>(work: (q: { query: PluginStorage['sql']['query'] }) => Promise<T>): Promise<T>;
  };
  /**
   * A private folder for the plugin's files (keys, caches): `<dataDir>/plugin-data/<name>`,
   * mode 0700, owned by the control process's user. Null where the host has no data dir.
   */
  readonly dir: string | null;
  readonly kv: {
    get(key: string): Promise<string | null>;
    set(key: string, value: string, opts?: { readonly ttlMs?: number }): Promise<void>;
    /** Sets only when absent (atomic): true when this call set it. For "use once" checks. */
    setIfAbsent(key: string, value: string, opts: { readonly ttlMs: number }): Promise<boolean>;
    delete(key: string): Promise<boolean>;
  };
}

/**
 * Services for a start-up where core has not wired the real ones yet: every call fails,
 * so auth and quota fail closed instead of letting anyone in.
 */
export function unavailableServices(): PluginServices {
  const fail = (what: string) => () => Promise.reject(new Error(`${what} service is not available`));
  return {
    accounts: { verifyPassword: fail('accounts'), findById: fail('accounts') },
    usage: { current: fail('usage') },
    audit: { record: fail('audit') },
  };
}
