/*
 * What a user is told when the host (the agent, the engine, the firewall) failed them: a
 * stable code, a plain sentence and a reference. The runtime's own words (socket paths,
 * engine addresses, iptables output, container logs) stay in the server log and the audit
 * row under that reference, for the operator the user tells it to.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../lib/log.js';
import { AppError } from '../errors.js';

/** What the user asked for when the host failed. */
export type HostAction = 'start' | 'connect' | 'stop' | 'profile';

const FAILED: Record<HostAction, string> = {
  start: 'could not start your session',
  connect: 'could not connect you to your session',
  stop: 'could not stop your session',
  profile: 'could not reach your persistent profile',
};

/** A reference an operator can search the log and the audit for: "hs-" and 12 hex digits. */
export function newReference(): string {
  return `hs-${randomBytes(6).toString('hex')}`;
}

/** The sentence a user reads (also the failed session's failure_reason). */
export function hostFailureMessage(action: HostAction, reference: string): string {
  return `the host ${FAILED[action]}; try again or tell your operator, reference ${reference}`;
}

/**
 * The user's error for a host failure: `code` (RUNTIME_UNAVAILABLE, SESSION_START_FAILED)
 * with the plain message and `details.reference`; the failure itself is the cause, and is
 * logged here with the reference.
 */
export function hostError(code: 'RUNTIME_UNAVAILABLE' | 'SESSION_START_FAILED', action: HostAction, err: unknown, log: Logger, reference = newReference()): AppError {
  log.error({ reference, code, action, detail: errorDetail(err) }, 'host failure');
  return new AppError(code, hostFailureMessage(action, reference), { cause: err, details: { reference } });
}

/** The failure's messages along its cause chain, bounded (for the log and the audit, never the user). */
export function errorDetail(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 4; depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(' <- ').slice(0, 2_000);
}
