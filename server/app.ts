import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { setupCertificates, type Certificates } from '../core/certs/index.js';
import { Gateway } from '../gateway/gateway.js';
import { RedisRouteTable } from '../lib/redis-route-table.js';
import { MemoryRouteTable, type RouteTable } from '../lib/route-table.js';
import type { UpgradeHandler } from '../gateway/terminate.js';
import { createApi } from '../core/api/app.js';
import { bootstrapNotice, createControlPlane, ensureFirstAdmin, type AuthSettingsInput, type BootstrapInput, type ControlPlane } from '../core/auth/index.js';
import type { Config } from '../core/config/schema.js';
import type { Logger } from '../lib/log.js';
import { startPluginHost, type PluginHost } from '../core/plugin/host.js';
import { loadPlugins } from '../core/plugin/loader.js';
import { openDatabase, type Database } from '../core/store/database.js';
import { openKv, type KeyValueStore } from '../core/store/kv.js';
import { DockerRuntime } from '../agent/docker-runtime.js';
import { SessionManager } from '../core/sessions/manager.js';
import type { SessionRuntime } from '../core/sessions/runtime.js';

export interface HackStream {
  config: Readonly<Config>;
  gateway: Gateway;
  routes: RouteTable;
  certs: Certificates;
  plugins: PluginHost;
  db: Database;
  kv: KeyValueStore;
  /** Accounts, tokens, quotas, audit: what the API calls. */
  control: ControlPlane;
  sessions: SessionManager;
  runtime: SessionRuntime;
  /** Binds the configured address (or `listen` overrides) and starts background work. */
  listen(override?: { host: string; port: number }): Promise<AddressInfo>;
  close(): Promise<void>;
}

export interface AppOptions {
  logger: Logger;
  /** Extra WebSocket upgrade handling on the API host (plugins, tests). */
  onUpgrade?: UpgradeHandler;
  /**
   * The first admin, created only when the database has no users (HACKSTREAM_ADMIN_USER /
   * HACKSTREAM_ADMIN_PASSWORD). A generated password goes to `announce` once (main.ts:
   * stderr), never to the log.
   */
  bootstrap?: BootstrapInput & { announce?: (text: string) => void };
  /** Account and token settings; tests lower the Argon2id cost or shorten lifetimes here. */
  auth?: AuthSettingsInput;
  /** Postgres only: keep the tables in this schema (tests give each run its own). */
  databaseSchema?: string;
  /** The container runtime (default: Docker at sessions.dockerHost). */
  runtime?: SessionRuntime;
}

/** Stable across restarts of one installation, distinct between installations on one engine. */
export function defaultInstanceId(dataDir: string): string {
  return `hs-${createHash('sha256').update(`${osHostname()}\0${dataDir}`).digest('hex').slice(0, 12)}`;
}

/** The composition root: builds gateway + core without listening (so tests can drive it). */
export async function createApp(config: Readonly<Config>, opts: AppOptions): Promise<HackStream> {
  const { logger } = opts;
  // Every plugin's options are validated before anything is created.
  const loaded = await loadPlugins(config.plugins);
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const opened: Array<{ close(): Promise<void> }> = [];
  const cleanup = async () => {
    for (const c of opened.reverse()) await c.close().catch(() => {});
  };
  let certs: Certificates;
  let routes: RouteTable;
  let db: Database;
  let kv: KeyValueStore;
  let plugins: PluginHost | undefined;
  let control: ControlPlane;
  try {
    certs = await setupCertificates({ dataDir, publicHost: config.publicHost, tls: config.tls, logger });
    opened.push(certs);
    routes = config.redisUrl
      ? await RedisRouteTable.create({ url: config.redisUrl, prefix: config.redisPrefix, logger })
      : new MemoryRouteTable();
    opened.push(routes);
    db = await openDatabase({
      dataDir,
      logger,
      ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
      ...(opts.databaseSchema ? { schema: opts.databaseSchema } : {}),
    });
    opened.push(db);
    kv = await openKv({ redisPrefix: config.redisPrefix, logger, ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}) });
    opened.push(kv);
    const getPlugins = () => {
      if (!plugins) throw new Error('the plugin host is not started yet');
      return plugins;
    };
    control = createControlPlane({ dataSource: db.dataSource, kv, logger, plugins: getPlugins, ...(opts.auth ? { settings: opts.auth } : {}) });
    plugins = await startPluginHost(loaded, { logger, services: control.services });
    opened.push(plugins);
    const [first] = await Promise.all([ensureFirstAdmin(control, opts.bootstrap ?? {}), control.hasher.warmUp()]);
    if (first.created) {
      logger.info({ userId: first.userId, username: first.username, generatedPassword: first.generatedPassword !== null }, 'first admin created');
      if (first.generatedPassword !== null) (opts.bootstrap?.announce ?? (() => {}))(bootstrapNotice(first.username, first.generatedPassword, config.publicHost));
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  const host = plugins;
  let gateway: Gateway | undefined;
  const instanceId = config.sessions.instanceId ?? defaultInstanceId(dataDir);
  const runtime =
    opts.runtime ??
    new DockerRuntime({
      logger,
      instanceId,
      network: config.sessions.network,
      readyTimeoutMs: config.sessions.readyTimeoutMs,
      ...(config.sessions.dockerHost ? { dockerHost: config.sessions.dockerHost } : {}),
      ...(config.sessions.image ? { image: config.sessions.image } : {}),
    });
  const issuer = certs;
  const sessions = new SessionManager({
    config: config.sessions,
    sessionDomain: config.sessionDomain,
    publicHost: config.publicHost,
    connectPort: () => gateway!.address().port,
    instanceId,
    logger,
    dataSource: db.dataSource,
    kv,
    routes,
    runtime,
    certs: { caPem: certs.ca.certPem, issue: (h) => issuer.issueSessionCert(h) },
    quotas: control.quotas,
    audit: control.audit,
    emit: (event) => host.sessions.emit(event),
    tunnels: { onTunnelChange: (l) => gateway!.onTunnelChange(l), tunnelCount: (h) => gateway!.tunnelCount(h) },
  });
  const api = createApi({
    logger,
    control,
    dataSource: db.dataSource,
    probes: [
      { name: 'database', ping: () => db.ping() },
      { name: 'kv', ping: () => kv.ping() },
    ],
    plugins: host,
    gatewayMetrics: () => gateway!.metrics(),
    sessions,
  });
  gateway = new Gateway({
    publicHost: config.publicHost,
    limits: config.gateway,
    routes,
    apiCert: certs.api,
    acmeChallenges: certs.acmeChallenges,
    app: api.callback(),
    logger,
    ...(opts.onUpgrade ? { onUpgrade: opts.onUpgrade } : {}),
  });
  const gw = gateway;
  let closing: Promise<void> | undefined;
  return {
    config,
    gateway: gw,
    routes,
    certs,
    plugins: host,
    db,
    kv,
    control,
    sessions,
    runtime,
    async listen(override) {
      const addr = await gw.listen(override?.host ?? config.listen.host, override?.port ?? config.listen.port);
      certs.start();
      sessions.start();
      return addr;
    },
    close() {
      // Reverse order of creation: nothing is closed while something opened after it still runs.
      closing ??= (async () => {
        // Sessions keep running (the next start adopts them); only the manager's timers stop.
        await sessions.close();
        await gw.close();
        await runtime.close();
        await host.close();
        await kv.close();
        await db.close();
        await routes.close();
        await certs.close();
      })();
      return closing;
    },
  };
}
