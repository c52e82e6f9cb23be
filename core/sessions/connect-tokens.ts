/*
 * One-time connect tokens: a random token the client presents to the session's xpra once.
 * Only its SHA-256 is kept (in the key-value store, and in the session container's allow
 * list until it expires); the token itself goes to the caller and nowhere else.
 */
import { createHash, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { normalizeAddress, withAdmission, type RouteTable } from '../../lib/route-table.js';
import type { Audit } from '../auth/audit.js';
import type { SessionsConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import { connectTokensIssued } from '../metrics/registry.js';
import type { KeyValueStore } from '../store/kv.js';
import type { Session } from '../store/entities.js';
import type { Logger } from '../../lib/log.js';
import { hostError } from './host-errors.js';
import { RuntimeUnavailableError, type SessionRuntime } from './runtime.js';
import type { ConnectDescriptor } from './view.js';

export interface ConnectTokenDeps {
  config: Readonly<SessionsConfig>;
  publicHost: string;
  /** The port clients dial (sessions.connectPort, else the gateway's bound port). */
  connectPort: () => number;
  kv: KeyValueStore;
  runtime: SessionRuntime;
  /** The session's route admits the caller's address until the token expires (issue 12). */
  routes: RouteTable;
  audit: Audit;
  caPem: string;
}

export class ConnectTokens {
  constructor(private readonly deps: ConnectTokenDeps) {}

  async issue(row: Session, actor: string, sourceIp: string | null, log: Logger): Promise<ConnectDescriptor> {
    if (!row.containerId || !row.hostname) throw new AppError('SESSION_NOT_RUNNING', 'the session has no running container');
    const ttlMs = this.deps.config.connectTokenTtlSeconds * 1000;
    const token = `hsc_${randomBytes(32).toString('base64url')}`;
    const hash = createHash('sha256').update(token).digest('hex');
    const expiresAt = new Date(Date.now() + ttlMs);
    // Recorded (by hash) in the key-value store first: when it is down, no token is issued.
    await this.deps.kv.set(`connect:${hash}`, row.id, { ttlMs });
    try {
      await this.deps.runtime.allowToken(row.containerId, hash, expiresAt);
    } catch (err) {
      if (err instanceof RuntimeUnavailableError) throw hostError('RUNTIME_UNAVAILABLE', 'connect', err, log);
      throw new AppError('SESSION_NOT_RUNNING', 'the session does not answer; stop it and launch a new one', { cause: err });
    }
    await this.admit(row.hostname, sourceIp, expiresAt);
    await this.deps.audit.record({
      actor,
      action: 'session_connect_token',
      target: row.id,
      sourceIp,
      result: 'success',
      details: { expiresAt: expiresAt.toISOString() },
    });
    connectTokensIssued.inc();
    return {
      host: this.deps.publicHost,
      port: this.deps.config.connectPort ?? this.deps.connectPort(),
      sni: row.hostname,
      token,
      expires_at: expiresAt.toISOString(),
      ca_cert: this.deps.caPem,
    };
  }

  /**
   * Only the address that asked reaches the session's xpra (3.1 talks before it authenticates):
   * its route admits `sourceIp` until the token expires; a tunnel opened by then lives on.
   */
  private async admit(hostname: string, sourceIp: string | null, expiresAt: Date): Promise<void> {
    const route = this.deps.routes.lookup(hostname);
    if (!route) throw new AppError('SESSION_NOT_RUNNING', 'the session has no route; stop it and launch a new one');
    const address = sourceIp === null ? null : normalizeAddress(sourceIp);
    // Without a caller's address (not an API call) no one new is let in: the token cannot be used.
    if (address === null || isIP(address) === 0) return;
    await this.deps.routes.add(hostname, withAdmission(route, address, expiresAt.getTime(), Date.now()));
  }
}
