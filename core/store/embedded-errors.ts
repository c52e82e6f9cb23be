/** Stable codes for what can stop the embedded database from starting or being reached. */
export type EmbeddedStoreCode =
  /** No PostgreSQL server binaries (Debian: apt-get install postgresql-15). */
  | 'EMBEDDED_NO_POSTGRES'
  /** The cluster was made by another PostgreSQL major version than the ones installed. */
  | 'EMBEDDED_VERSION_MISMATCH'
  /** The system user to run the server as cannot be found, created or used. */
  | 'EMBEDDED_USER'
  /** The server's user cannot reach the data dir. */
  | 'EMBEDDED_DIR_UNREACHABLE'
  /** initdb failed (its output is in the message). */
  | 'EMBEDDED_INITDB_FAILED'
  /** The server exited or did not become ready (the last lines of its log are in the message). */
  | 'EMBEDDED_START_FAILED'
  /** No embedded server runs on that data dir (for a process that only connects). */
  | 'EMBEDDED_NOT_RUNNING';

export class EmbeddedStoreError extends Error {
  readonly code: EmbeddedStoreCode;

  constructor(code: EmbeddedStoreCode, message: string, opts: { cause?: unknown } = {}) {
    super(`embedded database: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'EmbeddedStoreError';
    this.code = code;
  }
}
