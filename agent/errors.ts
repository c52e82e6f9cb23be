/*
 * The agent's refusals and failures, each with a code of the protocol (lib/agent-protocol.ts).
 * toAgentError keeps what reaches the caller short: a failed start says how it ended, never
 * the container's log (that stays in the agent's log).
 */
import type { AgentErrorCode } from '../lib/agent-protocol.js';
import { RuntimeUnavailableError } from '../core/sessions/runtime.js';
import { ImageError } from './image.js';
import { NetworkIsolationError } from './network.js';

/** The session container did not become ready; carries its last log lines. */
export class ContainerStartError extends Error {
  constructor(
    message: string,
    readonly reason: 'failed' | 'exited' | 'timeout',
    readonly logTail: string[],
    readonly exitCode: number | null = null,
    readonly oomKilled = false,
  ) {
    super(logTail.length ? `${message}; last log lines:\n${logTail.join('\n')}` : message);
    this.name = 'ContainerStartError';
  }
}

/** The container is not one of this instance's session containers (or does not exist). */
export class NotOwnedError extends Error {
  constructor(
    readonly containerId: string,
    instanceId: string,
  ) {
    super(`container ${containerId} is not a HackStream container of instance ${instanceId}`);
    this.name = 'NotOwnedError';
  }
}

export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

/** Refusals of the caller's request, audited as input_validation_fail. */
export const INPUT_CODES: ReadonlySet<AgentErrorCode> = new Set(['BAD_REQUEST', 'VALIDATION_FAILED', 'UNSUPPORTED_VERSION', 'UNKNOWN_METHOD']);
/** Refusals of what the caller may do, audited as authz_fail. */
export const AUTHZ_CODES: ReadonlySet<AgentErrorCode> = new Set(['LIMIT_EXCEEDED', 'NOT_OWNED']);

export function toAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  if (err instanceof NotOwnedError) return new AgentError('NOT_OWNED', 'not a session container of this installation');
  if (err instanceof RuntimeUnavailableError || err instanceof NetworkIsolationError) return new AgentError('RUNTIME_UNAVAILABLE', err.message.slice(0, 2000));
  if (err instanceof ContainerStartError) {
    const how =
      err.reason === 'timeout'
        ? 'was not ready in time'
        : err.reason === 'exited'
          ? `exited with code ${err.exitCode ?? 'unknown'}${err.oomKilled ? ' (out of memory)' : ''} before it was ready`
          : 'reported a failure';
    return new AgentError('START_FAILED', `the session container ${how}`);
  }
  if (err instanceof ImageError) return new AgentError('START_FAILED', 'the session image is not available (details are in the agent log)');
  return new AgentError('INTERNAL', 'the agent could not complete the request (details are in the agent log)');
}
