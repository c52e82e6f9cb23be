/**
 * The error catalogue: every error HackStream reports to a client has a stable code and
 * an HTTP status. Handlers throw `AppError`; one middleware renders `{error: {code, message}}`.
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
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  /** The session has ended (or is ending): it cannot be connected to. */
  SESSION_NOT_RUNNING: 409,
  QUOTA_EXCEEDED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MISDIRECTED_REQUEST: 421,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  /** profile "persist": persistent profiles do not exist yet. */
  PROFILE_UNAVAILABLE: 501,
  /** The session's container did not come up (its last log lines are in the server log). */
  SESSION_START_FAILED: 502,
  /** No container engine answers (HACKSTREAM_DOCKER_HOST, or install and start Docker). */
  RUNTIME_UNAVAILABLE: 503,
  /** This host runs as many sessions as its capacity settings allow. */
  CAPACITY_REACHED: 503,
  SERVICE_UNAVAILABLE: 503,
  QUOTA_UNAVAILABLE: 503,
  /** /ready: the database or the key-value store does not answer. */
  NOT_READY: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERRORS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers, e.g. Retry-After. */
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code];
    this.headers = opts.headers ?? {};
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
