/**
 * Error codes answered outside control's error middleware — by the edge, which imports nothing
 * from core/ — with their HTTP status. core/errors.ts's catalogue takes these entries as they
 * are, so a client sees one code with one status whichever process answered.
 */
export const SHARED_ERRORS = {
  /** A dependency is away (the edge: control does not answer; control: the key-value store). */
  SERVICE_UNAVAILABLE: 503,
} as const satisfies Record<string, number>;

export type SharedErrorCode = keyof typeof SHARED_ERRORS;
