import { SHARED_ERRORS } from '../lib/error-codes.js';

/**
 * The error catalogue: every error HackStream reports to a client has a stable code and
 * an HTTP status. Handlers throw `AppError`; one middleware renders `{error: {code, message}}`
 * (and `details` when the error carries some).
 */
export const ERRORS = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  /** A new password breaks the password policy (too short, too long, too common). */
  PASSWORD_POLICY: 400,
  /** No credentials, or an access token that is unknown, expired or revoked. */
  AUTH_REQUIRED: 401,
  AUTH_INVALID_CREDENTIALS: 401,
  /** A refresh token that is unknown, expired, revoked or already used. */
  AUTH_TOKEN_INVALID: 401,
  /** The first factor passed; a second one is needed (`details`: challenge_id, factors, expires_in seconds). */
  AUTH_SECOND_FACTOR_REQUIRED: 401,
  /** The second factor's response was refused (`details.attempts_left`). */
  AUTH_SECOND_FACTOR_INVALID: 401,
  /** A second-factor challenge that is unknown, expired, used or out of tries. */
  AUTH_CHALLENGE_INVALID: 401,
  /** The flow's provider (or core's provisioning) refused the login. */
  AUTH_FLOW_DENIED: 401,
  /** A callback's `state` that is missing, unknown, expired, used or of another flow. */
  AUTH_FLOW_STATE_INVALID: 400,
  /** Device flow (RFC 8628 names): not approved yet. */
  AUTHORIZATION_PENDING: 400,
  /** Device flow: polled sooner than the interval. */
  SLOW_DOWN: 400,
  /** Device flow: the device id is unknown, expired or already finished. */
  EXPIRED_TOKEN: 400,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  /** No redirect or device flow with this id. */
  AUTH_FLOW_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  /** The session has ended (or is ending): it cannot be connected to. */
  SESSION_NOT_RUNNING: 409,
  QUOTA_EXCEEDED: 409,
  /** profile "persist" (or a profile delete) while the user's persistent session is live: one Firefox per profile. */
  PROFILE_IN_USE: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MISDIRECTED_REQUEST: 421,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  /** profile "persist" on a server that keeps no persistent profiles (a runtime without them). */
  PROFILE_UNAVAILABLE: 501,
  /** The session's container did not come up (its last log lines are in the server log). */
  SESSION_START_FAILED: 502,
  /** No container engine answers (HACKSTREAM_DOCKER_HOST, or install and start Docker). */
  RUNTIME_UNAVAILABLE: 503,
  /** This host runs as many sessions as its capacity settings allow. */
  CAPACITY_REACHED: 503,
  /** Also answered by the edge itself (lib/error-codes.ts). */
  ...SHARED_ERRORS,
  QUOTA_UNAVAILABLE: 503,
  /** /ready: a check failed (the body lists every check with its reason: docs/api.md). */
  NOT_READY: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERRORS;

/** A JSON value in an error's `details`. */
export type ErrorDetail = string | number | boolean | null | readonly ErrorDetail[];

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers, e.g. Retry-After. */
  readonly headers: Record<string, string>;
  /** Machine-readable extras shown to the client (never a secret of someone else). */
  readonly details: Readonly<Record<string, ErrorDetail>> | undefined;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; headers?: Record<string, string>; details?: Record<string, ErrorDetail> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code];
    this.headers = opts.headers ?? {};
    this.details = opts.details;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
