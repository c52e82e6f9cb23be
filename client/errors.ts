/**
 * Exit codes of the `hackstream` CLI (documented in docs/clients.md). Every failure a user
 * can act on has its own code and a message that says what to do.
 */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  CA_MISMATCH: 4,
  AUTH: 5,
  QUOTA: 6,
  XPRA_MISSING: 7,
  SESSION_START_FAILED: 8,
  RUNTIME_UNAVAILABLE: 9,
  SESSION_GONE: 10,
  NOT_CONFIGURED: 11,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  /** The API's error code, when the failure came from the API. */
  readonly apiCode: string | undefined;

  constructor(
    readonly exitCode: ExitCode,
    message: string,
    options?: { cause?: unknown; apiCode?: string },
  ) {
    super(message, options);
    this.apiCode = options?.apiCode;
    this.name = 'CliError';
  }
}
