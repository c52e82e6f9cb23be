import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { setupCertificates, type Certificates } from '../gateway/certs/index.js';
import { Gateway } from '../gateway/gateway.js';
import { RedisRouteTable } from '../gateway/redis-route-table.js';
import { MemoryRouteTable, type RouteTable } from '../gateway/route-table.js';
import type { UpgradeHandler } from '../gateway/terminate.js';
import { createApi } from './api/app.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { startPluginHost, type PluginHost } from './plugin/host.js';
import { loadPlugins } from './plugin/loader.js';
import { unavailableServices } from './plugin/services.js';

export interface HackStream {
  config: Readonly<Config>;
  gateway: Gateway;
  routes: RouteTable;
  certs: Certificates;
  plugins: PluginHost;
  /** Binds the configured address (or `listen` overrides) and starts background work. */
  listen(override?: { host: string; port: number }): Promise<AddressInfo>;
  close(): Promise<void>;
}

export interface AppOptions {
  logger: Logger;
  /** Extra WebSocket upgrade handling on the API host (plugins, tests). */
  onUpgrade?: UpgradeHandler;
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
  let plugins: PluginHost;
  try {
    certs = await setupCertificates({ dataDir, publicHost: config.publicHost, tls: config.tls, logger });
    opened.push(certs);
    routes = config.redisUrl
      ? await RedisRouteTable.create({ url: config.redisUrl, prefix: config.redisPrefix, logger })
      : new MemoryRouteTable();
    opened.push(routes);
    // TODO(issue 3): real accounts and usage services once the store and accounts exist;
    // until then auth and quota fail closed.
    plugins = await startPluginHost(loaded, { logger, services: unavailableServices() });
  } catch (err) {
    await cleanup();
    throw err;
  }
  let gateway: Gateway | undefined;
  const api = createApi({ logger, plugins, gatewayMetrics: () => gateway!.metrics() });
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
  return {
    config,
    gateway: gw,
    routes,
    certs,
    plugins,
    async listen(override) {
      const addr = await gw.listen(override?.host ?? config.listen.host, override?.port ?? config.listen.port);
      certs.start();
      return addr;
    },
    async close() {
      await gw.close();
      await plugins.close();
      await routes.close();
      await certs.close();
    },
  };
}
