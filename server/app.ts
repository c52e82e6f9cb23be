/*
 * Agent, control and edge in ONE process, joined by the same private Unix sockets as in
 * production (the agent's RPC, the API hop and the edge link under `<dataDir>/run/`). Tests and
 * benchmarks start a whole HackStream this way; `npm start` runs the processes separately
 * under the supervisor.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { ControlPlane } from '../core/auth/index.js';
import type { Certificates } from '../core/certs/index.js';
import type { Config } from '../core/config/schema.js';
import type { PluginHost } from '../core/plugin/host.js';
import type { SessionManager } from '../core/sessions/manager.js';
import { AgentRuntime } from '../core/sessions/agent-runtime.js';
import type { SessionRuntime } from '../core/sessions/runtime.js';
import type { EdgeLink } from '../core/edge-link.js';
import type { Database } from '../core/store/database.js';
import type { KeyValueStore } from '../core/store/kv.js';
import type { Gateway } from '../gateway/gateway.js';
import type { Logger } from '../lib/log.js';
import type { RouteTable } from '../lib/route-table.js';
import { buildControl, type Control, type ControlOptions, type UpgradeHandler } from './control.js';
import { buildEdge, type Edge } from './edge.js';
import { buildAgent, databaseAudit, type Agent } from './agent.js';
import { allowUids } from './peers.js';
import { startTracing } from '../lib/tracing-sdk.js';

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
  /** Control's end of the edge link (routes out, tunnels in). */
  link: EdgeLink;
  /** Binds the configured address (or `listen` overrides) and starts background work. */
  listen(override?: { host: string; port: number }): Promise<AddressInfo>;
  close(): Promise<void>;
}

export interface AppOptions extends Pick<ControlOptions, 'bootstrap' | 'auth' | 'databaseSchema' | 'onUpgrade' | 'sessionsReadiness'> {
  logger: Logger;
}

export type { UpgradeHandler };

/** Builds the agent, control and the edge, connected, without listening on the public port. */
export async function createApp(config: Readonly<Config>, opts: AppOptions): Promise<HackStream> {
  const { logger } = opts;
  const dataDir = resolve(config.dataDir);
  const runDir = join(dataDir, 'run');
  mkdirSync(join(runDir, 'control'), { recursive: true, mode: 0o750 });
  mkdirSync(join(runDir, 'agent'), { recursive: true, mode: 0o750 });
  const me = process.getuid?.() ?? 0;
  // One SDK for the three parts (service "<serviceName>-app"); off without a `tracing` block.
  const tracing = await startTracing(config.tracing, 'app', logger);
  // The agent's refusals are audited in control's store, once it is open.
  let store: Database | undefined;
  const agent: Agent = buildAgent({
    config,
    logger,
    socketPath: join(runDir, 'agent', 'agent.sock'),
    allowedUids: [me],
    audit: {
      record: (entry) => (store ? databaseAudit(store).record(entry) : Promise.reject(new Error('the store is not open yet'))),
    },
  });
  await agent.listen();
  const runtime = new AgentRuntime({ socketPath: join(runDir, 'agent', 'agent.sock'), logger });
  const self = allowUids([me]);
  let control: Control;
  try {
    control = await buildControl(config, {
      logger,
      runDir,
      runtime,
      checkPeer: self,
      ...(opts.bootstrap ? { bootstrap: opts.bootstrap } : {}),
      ...(opts.auth ? { auth: opts.auth } : {}),
      ...(opts.databaseSchema ? { databaseSchema: opts.databaseSchema } : {}),
      ...(opts.onUpgrade ? { onUpgrade: opts.onUpgrade } : {}),
      ...(opts.sessionsReadiness ? { sessionsReadiness: true } : {}),
    });
  } catch (err) {
    await runtime.close();
    await agent.close();
    await tracing.shutdown();
    throw err;
  }
  store = control.db;
  const sessions = control.sessions;
  runtime.onReconnect(() => void sessions.reconcile().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'reconcile after the agent came back failed')));
  let edge: Edge;
  try {
    // The edge needs control's sockets (it waits for the API certificate over the link).
    await control.listen();
    edge = await buildEdge(config, { logger, runDir });
  } catch (err) {
    await control.close();
    await agent.close();
    await tracing.shutdown();
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
    link: control.link,
    listen: (override) => edge.listen(override),
    close() {
      // The edge drains first (it stops accepting), then control.
      closing ??= (async () => {
        await edge.close();
        await control.close();
        await agent.close();
        await tracing.shutdown();
      })();
      return closing;
    },
  };
}
