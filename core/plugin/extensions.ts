/**
 * The extension points a plugin can register into. Part of the public plugin contract:
 * plugins import these types from `core/plugin/contract.js`.
 */

/** A login attempt as the API received it. */
export interface AuthAttempt {
  readonly username: string;
  readonly password: string;
  /** The client's address, for providers that look at it (allow lists, logging). */
  readonly ip: string;
}

/**
 * Who an external identity source says the user is. Core provisions (just-in-time) or
 * updates the HackStream account `username`, owned by `source`; a local account of the same
 * name, or one owned by another source, is never taken over (the login is denied). The role
 * is set on every login (derived from the provider's claims or groups); a disabled account
 * stays disabled whatever the provider says.
 */
export interface ExternalIdentity {
  /** The HackStream username (3–64 of a-z 0-9 . _ -): map or normalise the provider's name. */
  readonly username: string;
  readonly role: Role;
  /**
   * The identity source, stable for an installation, e.g. `ldap` or `oidc:keycloak`. An
   * account created by one source answers only that source (and is not a local password).
   */
  readonly source: string;
  /** The provider's immutable id for the user (LDAP entryUUID or DN, OIDC `sub`), for audit. */
  readonly subject: string;
}

/**
 * A provider's answer. `ok` ends the chain with that user (an existing account by id, or an
 * external identity core provisions); `deny` ends it with a refusal; `skip` passes the
 * attempt to the next provider. `reason` is for logs and audit only, never shown to clients.
 */
export type AuthAnswer =
  | { readonly result: 'ok'; readonly userId: string }
  | { readonly result: 'ok'; readonly identity: ExternalIdentity }
  | { readonly result: 'skip' }
  | { readonly result: 'deny'; readonly reason: string };

/** An answer that ends a flow (redirect callback, device poll): `skip` means nothing there. */
export type FlowAnswer = Exclude<AuthAnswer, { readonly result: 'skip' }>;

/**
 * A password provider. Providers form a chain in plugin init order: the first `ok` wins, a
 * `deny` stops the chain, and when every provider skips the attempt is denied. A provider
 * that throws, hangs or answers anything else counts as `deny` (fail closed).
 */
export interface AuthProvider {
  authenticate(attempt: AuthAttempt): Promise<AuthAnswer>;
}

/** JSON a flow keeps between its steps; core stores it server-side, never in the browser. */
export type FlowData = string | number | boolean | null | readonly FlowData[] | { readonly [key: string]: FlowData };

/** A flow's id: in URLs (`/v1/auth/flows/<id>/…`) and audit rows; unique across plugins. */
export const FLOW_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * A browser redirect flow (OIDC Authorization Code + PKCE, SAML…). Core answers
 * `GET /v1/auth/flows/<id>/begin` by calling `begin` with a fresh random `state` and the
 * callback URL, keeps `data` server-side for 10 minutes keyed by that state, and redirects
 * the browser to `url`. On `GET /v1/auth/flows/<id>/callback` core takes the kept entry for
 * the `state` query parameter (single use: a missing, expired or reused state is refused
 * before the plugin is asked) and calls `callback`. The plugin checks everything else
 * (code, nonce, PKCE, ID token) and answers.
 */
export interface RedirectFlow {
  readonly id: string;
  /** What a sign-in page shows, e.g. "Company SSO". */
  readonly label: string;
  begin(ctx: { readonly state: string; readonly redirectUri: string; readonly ip: string }): Promise<{ readonly url: string; readonly data: FlowData }>;
  callback(ctx: {
    /** Every query parameter of the callback request (`state` included). */
    readonly params: Readonly<Record<string, string>>;
    readonly state: string;
    readonly redirectUri: string;
    readonly data: FlowData;
    readonly ip: string;
  }): Promise<FlowAnswer>;
}

/** What a device flow's `start` hands out; core shows it to the client (RFC 8628 names). */
export interface DeviceStart {
  readonly userCode: string;
  readonly verificationUri: string;
  readonly verificationUriComplete?: string;
  readonly expiresInS: number;
  /** The minimum seconds between polls. */
  readonly intervalS: number;
  /** Kept by core for the device code's life; given back to `poll`. */
  readonly data: FlowData;
}

/** One poll's outcome. `pending`: not yet; `slow-down`: the provider asked for a longer interval. */
export type DevicePoll = FlowAnswer | { readonly result: 'pending' } | { readonly result: 'slow-down' } | { readonly result: 'expired' };

/**
 * A device flow (OAuth 2.0 Device Authorization Grant) for clients without a browser, such
 * as the CLI. `POST /v1/auth/flows/<id>/device` calls `start`; core keeps `data` under a
 * random device id it returns. `POST /v1/auth/flows/<id>/device/poll` calls `poll` — never
 * more often than the interval (core answers SLOW_DOWN itself) and never after expiry.
 */
export interface DeviceFlow {
  readonly id: string;
  readonly label: string;
  start(ctx: { readonly ip: string }): Promise<DeviceStart>;
  poll(ctx: { readonly data: FlowData; readonly ip: string }): Promise<DevicePoll>;
}

/** The login a second factor is asked about. `provider`: the plugin that passed the first factor. */
export interface SecondFactorSubject {
  readonly userId: string;
  readonly username: string;
  readonly provider: string;
  readonly ip: string;
}

/**
 * A second factor (TOTP, WebAuthn…). After any first factor succeeded core asks every
 * registered factor whether it applies; if one does, no token is issued: the login answers
 * 401 AUTH_SECOND_FACTOR_REQUIRED with a single-use challenge id (5 minutes, 5 tries), and
 * `POST /v1/login/second-factor` passes the response to `verify`. Throwing, hanging or a
 * malformed answer fails closed (required: yes; verify: refused).
 */
export interface SecondFactor {
  /** A short name clients show and send back (`totp`); unique across plugins. */
  readonly id: string;
  required(subject: SecondFactorSubject): Promise<boolean>;
  verify(subject: SecondFactorSubject, response: string): Promise<{ readonly ok: true } | { readonly ok: false; readonly reason: string }>;
  /**
   * Optional: an admin removes the user's factor (the admin console's "reset second factor");
   * resolves true when there was one to remove. The plugin audits it as its own admin resets.
   */
  reset?(userId: string, by: { readonly userId: string; readonly username: string; readonly ip: string }): Promise<boolean>;
}

export type Role = 'admin' | 'user';

/** A user's resource limits. The units are in the names. */
export interface Quota {
  /** Sessions running at once. */
  readonly maxSessions: number;
  /** CPU cores per session (fractions allowed). */
  readonly cpus: number;
  readonly memoryMb: number;
  /** A session with no client attached for this long is stopped. */
  readonly idleTimeoutMinutes: number;
  /** A session is stopped after running this long. */
  readonly maxDurationMinutes: number;
  /** Persistent profile storage. */
  readonly storageMb: number;
  /**
   * Size of the user's persistent profile volume (a filesystem of exactly this size: writes
   * past it fail). Optional for policies written before it; unset: sessions.profiles.defaultMb.
   */
  readonly profileMb?: number;
}

/** Who asks: the user, their role, and the per-user override an admin set (if any). */
export interface QuotaSubject {
  readonly userId: string;
  readonly role: Role;
  readonly override?: Readonly<Partial<Quota>>;
}

/** What is asked for. */
export interface QuotaRequest {
  readonly action: 'session.create';
  readonly profile: 'ephemeral' | 'persist';
}

/**
 * `QUOTA_EXCEEDED`: a limit is reached. `QUOTA_UNAVAILABLE`: no decision could be made
 * (no policy enabled, the policy failed); the host answers this one, never a policy.
 */
export type QuotaDenialCode = 'QUOTA_EXCEEDED' | 'QUOTA_UNAVAILABLE';

export type QuotaDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly code: QuotaDenialCode; readonly message: string };

/**
 * The quota policy. Exactly one may be registered; with none, every check is refused.
 * Core calls `check` while holding the user's create lock, so the usage a policy reads
 * cannot change under it. `message` is shown to the client.
 */
export interface QuotaPolicy {
  check(subject: QuotaSubject, request: QuotaRequest): Promise<QuotaDecision>;
  /** The limits that apply to the subject (role defaults with the override applied). */
  effectiveQuota(subject: QuotaSubject): Promise<Quota>;
}

/** One committed audit row, as sinks receive it (frozen; every sink sees the same object). */
export interface AuditEvent {
  readonly id: string;
  /** ISO 8601, UTC. */
  readonly at: string;
  /** User id of who acted; null for anonymous (e.g. a failed login of an unknown user). */
  readonly actor: string | null;
  /** Dotted action name, e.g. `auth.login`, `user.update`, `session.create`. */
  readonly action: string;
  readonly target: string | null;
  readonly ip: string | null;
  readonly result: 'success' | 'failure';
}

/**
 * An audit sink. `write` is called after each committed audit row, one event at a time
 * per sink. A sink that throws or is slow is logged and isolated: it never delays or
 * fails a request, and when its queue is full further events are dropped for that sink.
 */
export interface AuditSink {
  write(event: AuditEvent): Promise<void>;
}

export type SessionEventType = 'created' | 'ready' | 'connected' | 'idle' | 'stopped' | 'failed';

/** Why a session stopped. */
export type StopReason = 'user' | 'admin' | 'idle-timeout' | 'max-duration' | 'reconciled' | 'shutdown' | 'app-exited';

interface SessionEventBase {
  readonly sessionId: string;
  readonly userId: string;
  /** ISO 8601, UTC. */
  readonly at: string;
}

/** A session state change, delivered to listeners after it is persisted (frozen). */
export type SessionEvent =
  | (SessionEventBase & { readonly type: 'created'; readonly app: string; readonly profile: 'ephemeral' | 'persist' })
  | (SessionEventBase & { readonly type: 'ready' | 'connected' | 'idle' })
  | (SessionEventBase & { readonly type: 'stopped'; readonly reason: StopReason })
  | (SessionEventBase & { readonly type: 'failed'; readonly error: string });

/**
 * A session lifecycle listener. Called for every event; switch on `event.type`. It must not
 * block: a listener that throws or rejects is logged and the others still run.
 */
export type SessionListener = (event: SessionEvent) => void | Promise<void>;
