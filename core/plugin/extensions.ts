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
 * A provider's answer. `ok` ends the chain with that user; `deny` ends it with a refusal;
 * `skip` passes the attempt to the next provider. `reason` is for logs and audit only and
 * is never shown to the client.
 */
export type AuthAnswer =
  | { readonly result: 'ok'; readonly userId: string }
  | { readonly result: 'skip' }
  | { readonly result: 'deny'; readonly reason: string };

/**
 * An auth provider. Providers form a chain in plugin init order: the first `ok` wins, a
 * `deny` stops the chain, and when every provider skips the attempt is denied. A provider
 * that throws, hangs or answers anything else counts as `deny` (fail closed).
 */
export interface AuthProvider {
  authenticate(attempt: AuthAttempt): Promise<AuthAnswer>;
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
