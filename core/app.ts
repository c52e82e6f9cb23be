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

export interface HackStream {
  config: Readonly<Config>;
  gateway: Gateway;
  routes: RouteTable;
  certs: Certificates;
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
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const certs = await setupCertificates({ dataDir, publicHost: config.publicHost, tls: config.tls, logger });
  let routes: RouteTable;
  try {
    routes = config.redisUrl ? await RedisRouteTable.create({ url: config.redisUrl, prefix: config.redisPrefix, logger }) : new MemoryRouteTable();
  } catch (err) {
    await certs.close();
    throw err;
  }
  let gateway: Gateway | undefined;
  const api = createApi({ logger, gatewayMetrics: () => gateway!.metrics() });
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
    async listen(override) {
      const addr = await gw.listen(override?.host ?? config.listen.host, override?.port ?? config.listen.port);
      certs.start();
      return addr;
    },
    async close() {
      await gw.close();
      await routes.close();
      await certs.close();
    },
  };
}
