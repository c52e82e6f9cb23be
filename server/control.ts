/*
 * The control plane's composition root: accounts, tokens, quotas, audit, plugins, the store,
 * certificates, the session manager and the Koa API — served on a private Unix socket that
 * only the edge may use (`<runDir>/control/api.sock`), plus the edge link (routes,
 * certificates, tunnels). It never talks to Docker or iptables: the runtime it is given does
 * (the agent's RPC client in production).
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { dirname, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { createApi } from '../core/api/app.js';
import { bootstrapNotice, createControlPlane, ensureFirstAdmin, type AuthSettingsInput, type BootstrapInput, type ControlPlane } from '../core/auth/index.js';
import { setupCertificates, type Certificates } from '../core/certs/index.js';
import { configDir, pluginsDirOf } from '../core/config/load.js';
import type { Config } from '../core/config/schema.js';
import { EdgeLink } from '../core/edge-link.js';
import { AuditChainMonitor } from '../core/metrics/audit-chain.js';
import { controlScrapeSource } from '../core/metrics/control-source.js';
import { enableDefaultMetrics } from '../core/metrics/registry.js';
import { scrapeCredentialCheck } from '../core/metrics/scrape-credential.js';
import { addScrapeSource, METRICS_CONTENT_TYPE, renderMetrics } from '../core/metrics/scrape.js';
import { startPluginHost, type PluginHost } from '../core/plugin/host.js';
import { loadPlugins } from '../core/plugin/loader.js';
import { pluginStorageProvider } from '../core/plugin/storage.js';
import { ProfileService } from '../core/profiles/service.js';
import { SessionManager } from '../core/sessions/manager.js';
import type { Listener } from '../core/store/notifications.js';
import { USER_REVOKED_CHANNEL } from '../core/auth/users.js';
import type { SessionRuntime } from '../core/sessions/runtime.js';
import { openDatabase, type Database } from '../core/store/database.js';
import { openKv, type KeyValueStore } from '../core/store/kv.js';
import { defaultInstanceId } from '../lib/instance-id.js';
import type { Logger } from '../lib/log.js';
import { RedisRouteTable } from '../lib/redis-route-table.js';
import { MemoryRouteTable, type RouteTable } from '../lib/route-table.js';
import { controlSockets } from './edge.js';
import { readinessProbes } from './readiness.js';
import { rateLimiter } from '../core/rate-limit.js';
import { sourceId } from '../core/auth/throttle.js';
import { MemoryKv } from '../core/store/kv-memory.js';

export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface ControlOptions {
  logger: Logger;
  /** `<runDir>/control/` gets control's sockets. */
  runDir: string;
  /** What runs session containers: the agent's client in production, in-process in some tests. */
  runtime: SessionRuntime;
  /** Whether a process connecting to control's sockets may (peer credentials); a string says why not. */
  checkPeer: (socket: net.Socket) => true | string;
  /** WebSocket upgrades on the API host (plugins, tests). */
  onUpgrade?: UpgradeHandler;
  /**
   * The first admin, created only when the database has no users (HACKSTREAM_ADMIN_USER /
   * HACKSTREAM_ADMIN_PASSWORD). A generated password goes to `announce` once, never to the log.
   */
  bootstrap?: BootstrapInput & { announce?: (text: string, first: { username: string; password: string }) => void };
  /** Account and token settings; tests lower the Argon2id cost or shorten lifetimes here. */
  auth?: AuthSettingsInput;
  /** Postgres only: keep the tables in this schema (tests give each run its own). */
  databaseSchema?: string;
  /**
   * /ready also asks the runtime whether a session could start now, and the runtime is
   * prepared (image, network, firewall) at start instead of at the first launch. On for
   * `npm start`; tests that are not about sessions leave it off.
   */
  sessionsReadiness?: boolean;
}

export interface Control {
  config: Readonly<Config>;
  certs: Certificates;
  plugins: PluginHost;
  db: Database;
  kv: KeyValueStore;
  control: ControlPlane;
  sessions: SessionManager;
  runtime: SessionRuntime;
  link: EdgeLink;
  /** What the session manager writes: confirmed by the edges before a change resolves. */
  routes: RouteTable;
  listen(): Promise<void>;
  close(): Promise<void>;
}

/** Builds control without listening: store, plugins, certificates, sessions, API. */
export async function buildControl(config: Readonly<Config>, opts: ControlOptions): Promise<Control> {
  const { logger } = opts;
  // Every plugin's options are validated before anything is created.
  const loaded = await loadPlugins(config.plugins, { baseDir: configDir(config), pluginsDir: pluginsDirOf(config) });
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const opened: Array<{ close(): Promise<void> }> = [];
  const cleanup = async () => {
    for (const c of opened.reverse()) await c.close().catch(() => {});
  };
  let certs: Certificates;
  let inner: RouteTable;
  let db: Database;
  let kv: KeyValueStore;
  let plugins: PluginHost | undefined;
  let control: ControlPlane;
  try {
    certs = await setupCertificates({ dataDir, publicHost: config.publicHost, tls: config.tls, logger });
    opened.push(certs);
    inner = config.redisUrl ? await RedisRouteTable.create({ url: config.redisUrl, prefix: config.redisPrefix, logger }) : new MemoryRouteTable();
    opened.push(inner);
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
    const storage = pluginStorageProvider({ dataSource: db.dataSource, kv, logger, dataDir, ...(opts.databaseSchema ? { databaseSchema: opts.databaseSchema } : {}) });
    plugins = await startPluginHost(loaded, { logger, services: control.services, storage });
    opened.push(plugins);
    const [first] = await Promise.all([ensureFirstAdmin(control, opts.bootstrap ?? {}), control.hasher.warmUp()]);
    if (first.created) {
      logger.info({ userId: first.userId, username: first.username, generatedPassword: first.generatedPassword !== null }, 'first admin created');
      if (first.generatedPassword !== null) (opts.bootstrap?.announce ?? (() => {}))(bootstrapNotice(first.username, first.generatedPassword, config.publicHost), { username: first.username, password: first.generatedPassword });
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  const host = plugins;
  const { runtime } = opts;
  const sockets = controlSockets(opts.runDir);
  const link = new EdgeLink({
    socketPath: sockets.edge,
    logger,
    checkPeer: opts.checkPeer,
    apiCert: certs.api,
    challenges: certs.acmeChallenges,
    routes: inner,
    // ACME ordering needs an edge that answers TLS-ALPN-01 on the public port.
    onEdgeListening: () => {
      if (certsStarted) return;
      certsStarted = true;
      certs.start();
    },
    onCrash: (report) => {
      logger.error({ pid: report.pid, error: report.error }, 'an edge process crashed');
      void control.audit
        .record({ actor: 'edge', action: 'sys_crash', target: `pid ${report.pid}`, result: 'failure', details: { error: report.error.slice(0, 500) } })
        .catch((err: unknown) => logger.error({ err: (err as Error).message }, 'could not audit the edge crash'));
    },
  });
  let certsStarted = false;
  const instanceId = config.sessions.instanceId ?? defaultInstanceId(dataDir);
  const issuer = certs;
  const sessions = new SessionManager({
    config: config.sessions,
    sessionDomain: config.sessionDomain,
    publicHost: config.publicHost,
    connectPort: () => link.edgePort() ?? config.listen.port,
    instanceId,
    logger,
    dataSource: db.dataSource,
    kv,
    routes: link.routes,
    runtime,
    certs: { caPem: certs.ca.certPem, issue: (h) => issuer.issueSessionCert(h) },
    quotas: control.quotas,
    audit: control.audit,
    emit: (event) => host.sessions.emit(event),
    tunnels: link,
    connectLimit: rateLimiter({ kv, scope: 'connect', perMinute: config.rateLimits.connectPerMinute, message: 'too many connects to sessions this minute; try again shortly', log: logger }),
  });
  enableDefaultMetrics();
  const removeScrapeSource = addScrapeSource(
    controlScrapeSource({
      gateway: () => link.freshMetrics(),
      dataSource: db.dataSource,
      instanceId,
      config: config.sessions,
      poolReady: () => sessions.poolSize(),
      usage: () => sessions.usage(),
      certificates: () => ({ api: certs.api.current().certPem, ca: certs.ca.certPem }),
      passwordHashEvaluations: () => control.hasher.evaluations,
      logger,
    }),
  );
  const auditChain = new AuditChainMonitor(db.dataSource, config.metrics.auditVerifyIntervalSeconds * 1000, logger);
  // Counted in this process (a memory store of its own): /ready must not need the stores it checks.
  const readyKv = new MemoryKv(logger);
  const readyLimit = rateLimiter({ kv: readyKv, scope: 'ready', perMinute: config.rateLimits.readyPerMinute, message: 'too many readiness checks from this address; try again shortly', log: logger });
  const api = createApi({
    logger,
    control,
    dataSource: db.dataSource,
    probes: readinessProbes({ db, kv, ...(opts.sessionsReadiness ? { runtime } : {}) }),
    readyLimit: (ip) => readyLimit(sourceId(ip)),
    plugins: host,
    metrics: {
      render: renderMetrics,
      contentType: METRICS_CONTENT_TYPE,
      isScraper: scrapeCredentialCheck(config.metrics.scrapeTokenSha256),
    },
    sessions,
    profiles: new ProfileService({ dataSource: db.dataSource, runtime, audit: control.audit, logger }),
  });
  // Only the edge reaches this socket (checked below), and it sets X-Forwarded-For itself.
  api.proxy = true;
  api.maxIpsCount = 1;
  const server = http.createServer(
    // The edge closes idle connections first (30 s), so control never closes one under a request.
    { keepAliveTimeout: 120_000, headersTimeout: 60_000, requestTimeout: 300_000 },
    api.callback(),
  );
  server.on('connection', (socket: net.Socket) => {
    const allowed = opts.checkPeer(socket);
    if (allowed !== true) {
      logger.warn({ reason: allowed }, 'refused a connection to the API socket');
      socket.destroy();
    }
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (opts.onUpgrade) opts.onUpgrade(req, socket, head);
    else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  server.on('clientError', (_err, socket: Duplex) => socket.destroy());

  let closing: Promise<void> | undefined;
  let userRevoked: Listener | undefined;
  return {
    config,
    certs,
    plugins: host,
    db,
    kv,
    control,
    sessions,
    runtime,
    link,
    routes: link.routes,
    async listen() {
      mkdirSync(dirname(sockets.api), { recursive: true });
      await link.listen();
      rmSync(sockets.api, { force: true });
      await new Promise<void>((res, rej) => {
        server.once('error', rej);
        server.listen(sockets.api, () => {
          server.off('error', rej);
          res();
        });
      });
      chmodSync(sockets.api, 0o660);
      sessions.start();
      // A user disabled (or whose password or role changed) by another process — the admin CLI,
      // another control plane — loses their sessions now, not at the next reconcile pass.
      const catchUp = () => void sessions.reconcile().catch(() => {});
      userRevoked = db.listen(USER_REVOKED_CHANNEL, { message: catchUp, reconnected: catchUp });
      if (opts.sessionsReadiness) sessions.prepareInBackground();
      auditChain.start();
    },
    close() {
      // Reverse order of creation: nothing is closed while something opened after it still runs.
      closing ??= (async () => {
        await userRevoked?.close();
        removeScrapeSource();
        await auditChain.close();
        // Sessions keep running (the next start adopts them); only the manager's timers stop.
        await sessions.close();
        server.closeIdleConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await link.close();
        await runtime.close();
        await host.close();
        await readyKv.close();
        await kv.close();
        await db.close();
        await inner.close();
        await certs.close();
      })();
      return closing;
    },
  };
}
