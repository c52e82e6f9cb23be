/*
 * The agent's composition root: the only privileged process (Docker engine, host firewall).
 * Builds without listening so tests can drive it; server/agent-main.ts is its entry.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../core/config/schema.js';
import type { Logger } from '../lib/log.js';
import { recordStandaloneAudit } from '../core/audit/index.js';
import type { Database } from '../core/store/database.js';
import type { AgentAudit } from '../agent/audit.js';
import { DockerRuntime } from '../agent/docker-runtime.js';
import { REPO_ROOT } from '../agent/image.js';
import { defaultInstanceId } from '../lib/instance-id.js';
import { agentLimits } from '../agent/limits.js';
import type { AgentEngine } from '../agent/methods.js';
import { AgentServer } from '../agent/server.js';
import { dockerProfileUsers } from '../agent/profile-users.js';
import { ProfileStore } from '../agent/profiles.js';

export interface AgentBuildOptions {
  config: Readonly<Config>;
  logger: Logger;
  socketPath: string;
  /** Peer uids that may connect: the control plane's (root only when listed). */
  allowedUids: readonly number[];
  audit: AgentAudit;
  /** Default: DockerRuntime on the config's engine, instance, network and image. */
  runtime?: AgentEngine;
  /** Audit rows per peer uid and minute (default 100). */
  auditPerMinute?: number;
  /** The socket file's mode (default 0o660). */
  socketMode?: number;
}

export interface Agent {
  listen(): Promise<void>;
  close(): Promise<void>;
}

export function buildAgent(opts: AgentBuildOptions): Agent {
  const { config, logger } = opts;
  const s = config.sessions;
  const runtime =
    opts.runtime ??
    new DockerRuntime({
      logger,
      instanceId: s.instanceId ?? defaultInstanceId(config.dataDir),
      network: s.network,
      readyTimeoutMs: s.readyTimeoutMs,
      ...(s.dockerHost ? { dockerHost: s.dockerHost } : {}),
      ...(s.image ? { image: s.image } : {}),
    });
  // Profiles need the engine's view of which containers mount a volume: only with the real runtime.
  const profiles =
    runtime instanceof DockerRuntime
      ? new ProfileStore({ dir: join(resolve(config.dataDir), 'profiles'), maxMb: s.profiles.maxMb, users: dockerProfileUsers(runtime.docker), logger })
      : undefined;
  const server = new AgentServer({
    socketPath: opts.socketPath,
    allowedUids: opts.allowedUids,
    engine: runtime,
    limits: agentLimits(s),
    audit: opts.audit,
    logger,
    agentVersion: agentVersion(),
    ...(opts.auditPerMinute !== undefined ? { auditPerMinute: opts.auditPerMinute } : {}),
    ...(opts.socketMode !== undefined ? { socketMode: opts.socketMode } : {}),
    ...(profiles ? { profiles } : {}),
  });
  return { listen: () => server.listen(), close: () => server.close() };
}

/** Audit rows through the store (the agent appends rows; it never migrates). */
export function databaseAudit(db: Pick<Database, 'dataSource'>): AgentAudit {
  return {
    async record(entry) {
      await recordStandaloneAudit(db.dataSource, entry);
    },
  };
}

function agentVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
  return typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}
