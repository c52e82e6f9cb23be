/*
 * Edge and control in ONE process, joined by the same private Unix sockets as in production
 * (the API hop and the edge link under `<dataDir>/run/`). Tests and benchmarks start a whole
 * HackStream this way; `npm start` runs the processes separately under the supervisor.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { DockerRuntime } from '../agent/docker-runtime.js';
import type { ControlPlane } from '../core/auth/index.js';
import type { Certificates } from '../core/certs/index.js';
import type { Config } from '../core/config/schema.js';
import type { PluginHost } from '../core/plugin/host.js';
import type { SessionManager } from '../core/sessions/manager.js';
import type { SessionRuntime } from '../core/sessions/runtime.js';
import type { Database } from '../core/store/database.js';
import type { KeyValueStore } from '../core/store/kv.js';
import type { Gateway } from '../gateway/gateway.js';
import type { Logger } from '../lib/log.js';
import type { RouteTable } from '../lib/route-table.js';
import { buildControl, defaultInstanceId, type ControlOptions, type UpgradeHandler } from './control.js';
import { buildEdge, type Edge } from './edge.js';
import { allowUids } from './peers.js';

export { defaultInstanceId };

export interface HackStream {
  config: Readonly<Config>;
  /** The edge's listener. */
  gateway: Gateway;
  /** The routes control publishes (resolved once the edge applied them). */
  routes: RouteTable;
  certs: Certificates;
  plugins: PluginHost;
  db: Database;
  kv: KeyValueStore;
  /** Accounts, tokens, quotas, audit: what the API calls. */
  control: ControlPlane;
  sessions: SessionManager;
  runtime: SessionRuntime;
  edge: Edge;
  /** Binds the configured address (or `listen` overrides) and starts background work. */
  listen(override?: { host: string; port: number }): Promise<AddressInfo>;
  close(): Promise<void>;
}

export interface AppOptions extends Pick<ControlOptions, 'bootstrap' | 'auth' | 'databaseSchema' | 'onUpgrade'> {
  logger: Logger;
  /** The container runtime (default: Docker at sessions.dockerHost, in this process). */
  runtime?: SessionRuntime;
}

export type { UpgradeHandler };

/** Builds control and the edge, connected, without listening on the public port. */
export async function createApp(config: Readonly<Config>, opts: AppOptions): Promise<HackStream> {
  const { logger } = opts;
  const dataDir = resolve(config.dataDir);
  const runDir = join(dataDir, 'run');
  mkdirSync(join(runDir, 'control'), { recursive: true, mode: 0o750 });
  const runtime =
    opts.runtime ??
    new DockerRuntime({
      logger,
      instanceId: config.sessions.instanceId ?? defaultInstanceId(dataDir),
      network: config.sessions.network,
      readyTimeoutMs: config.sessions.readyTimeoutMs,
      ...(config.sessions.dockerHost ? { dockerHost: config.sessions.dockerHost } : {}),
      ...(config.sessions.image ? { image: config.sessions.image } : {}),
    });
  const self = allowUids([process.getuid?.() ?? 0]);
  const control = await buildControl(config, {
    logger,
    runDir,
    runtime,
    checkPeer: self,
    ...(opts.bootstrap ? { bootstrap: opts.bootstrap } : {}),
    ...(opts.auth ? { auth: opts.auth } : {}),
    ...(opts.databaseSchema ? { databaseSchema: opts.databaseSchema } : {}),
    ...(opts.onUpgrade ? { onUpgrade: opts.onUpgrade } : {}),
  });
  let edge: Edge;
  try {
    // The edge needs control's sockets (it waits for the API certificate over the link).
    await control.listen();
    edge = await buildEdge(config, { logger, runDir });
  } catch (err) {
    await control.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    config,
    gateway: edge.gateway,
    routes: control.routes,
    certs: control.certs,
    plugins: control.plugins,
    db: control.db,
    kv: control.kv,
    control: control.control,
    sessions: control.sessions,
    runtime,
    edge,
    listen: (override) => edge.listen(override),
    close() {
      // The edge drains first (it stops accepting), then control.
      closing ??= (async () => {
        await edge.close();
        await control.close();
      })();
      return closing;
    },
  };
}
