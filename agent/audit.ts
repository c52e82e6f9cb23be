/*
 * The agent's audit trail of refusals, written through an injected sink (server/agent.ts
 * writes rows to the store). Rows are rate-limited per peer uid: a flood of bad requests
 * (a compromised control plane, a fuzzer) writes at most `perMinute` rows a minute, then one
 * excess_rate_limit_exceeded row, then nothing until the minute is over — it cannot fill
 * the table. A sink that fails is logged, never thrown into the connection.
 */
import type { AuditInput } from '../core/audit/record.js';
import type { Logger } from '../lib/log.js';
import type { AgentErrorCode } from '../lib/agent-protocol.js';
import { AUTHZ_CODES } from './errors.js';

/** Where the agent's audit rows go. */
export interface AgentAudit {
  record(entry: AuditInput): Promise<void>;
}

export interface Peer {
  uid: number;
  pid: number;
}

export const AUDIT_ACTOR = 'agent';
const WINDOW_MS = 60_000;
/** Rows waiting to be written; beyond this (a store that stopped answering) they are logged and dropped. */
const MAX_QUEUED = 1_000;

export class RefusalAudit {
  private readonly windows = new Map<number, { start: number; rows: number; suppressed: number }>();
  private readonly inFlight = new Set<Promise<void>>();
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;

  constructor(
    private readonly sink: AgentAudit,
    private readonly log: Logger,
    private readonly perMinute = 100,
  ) {}

  /** One refusal: `target` is the method (or what was refused when there is none). */
  refused(peer: Peer, target: string, code: AgentErrorCode, message: string): void {
    const action = AUTHZ_CODES.has(code) ? 'authz_fail' : 'input_validation_fail';
    this.limited(peer, { actor: AUDIT_ACTOR, action, target: target.slice(0, 64), result: 'failure', details: { code, message: message.slice(0, 500), peerUid: peer.uid, peerPid: peer.pid } });
  }

  /** A connection from a uid not in the allow-list. */
  wrongPeer(peer: Peer): void {
    this.limited(peer, { actor: AUDIT_ACTOR, action: 'authz_fail', target: 'connect', result: 'failure', details: { code: 'PEER_NOT_ALLOWED', peerUid: peer.uid, peerPid: peer.pid } });
  }

  /** A change the agent made (a profile volume created or deleted): not rate-limited. */
  note(entry: AuditInput): void {
    this.write(entry);
  }

  /** Resolves once every row asked for so far is written (or failed). */
  async flush(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  private limited(peer: Peer, entry: AuditInput): void {
    const now = Date.now();
    let w = this.windows.get(peer.uid);
    if (!w || now - w.start >= WINDOW_MS) {
      w = { start: now, rows: 0, suppressed: 0 };
      this.windows.set(peer.uid, w);
    }
    if (w.rows < this.perMinute) {
      w.rows++;
      this.write(entry);
      return;
    }
    if (w.suppressed++ > 0) return;
    this.write({
      actor: AUDIT_ACTOR,
      action: 'excess_rate_limit_exceeded',
      target: 'agent',
      result: 'failure',
      details: { peerUid: peer.uid, peerPid: peer.pid, perMinute: this.perMinute, note: 'further refusals from this uid are not audited this minute' },
    });
  }

  /**
   * Rows are written one at a time: each takes the audit chain lock anyway, and a burst of
   * concurrent transactions would only queue for pool connections until they time out.
   */
  private write(entry: AuditInput): void {
    if (this.queued >= MAX_QUEUED) {
      this.log.warn({ action: entry.action, target: entry.target }, 'agent audit queue full; row dropped');
      return;
    }
    this.queued++;
    const p = this.tail.then(() =>
      this.sink.record(entry).catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message, action: entry.action, target: entry.target }, 'agent audit row not written');
      }),
    );
    this.tail = p.finally(() => {
      this.queued--;
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}
