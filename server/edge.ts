/*
 * The edge's composition root: the listener (gateway/), the route table (from control over
 * the edge link, and from Redis when several control planes share it), TLS termination of the
 * API host and the hop of its requests to control. Nothing here loads Koa, TypeORM, the store,
 * the plugin host, node-forge or the Docker client: keep it that way (the edge is the
 * internet-facing process and the hot path).
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../core/config/schema.js';
import { ControlLink } from '../gateway/control-link.js';
import { createForwarder } from '../gateway/forward.js';
import { Gateway } from '../gateway/gateway.js';
import type { Logger } from '../lib/log.js';
import { RedisRouteTable } from '../lib/redis-route-table.js';
import { MemoryRouteTable } from '../lib/route-table.js';

export interface EdgeOptions {
  logger: Logger;
  /** Holds control's sockets: `<runDir>/control/{api,edge}.sock`. */
  runDir: string;
}

export interface Edge {
  gateway: Gateway;
  routes: MemoryRouteTable;
  link: ControlLink;
  listen(override?: { host: string; port: number }): Promise<AddressInfo>;
  close(drainMs?: number): Promise<void>;
}

export type EdgeConfig = Pick<Readonly<Config>, 'listen' | 'publicHost' | 'gateway' | 'redisUrl' | 'redisPrefix'>;

/** How often the edge sends its counters to control (for /v1/metrics). */
const METRICS_EVERY_MS = 5_000;

export function controlSockets(runDir: string): { api: string; edge: string } {
  return { api: join(runDir, 'control', 'api.sock'), edge: join(runDir, 'control', 'edge.sock') };
}

/** Connects to control (waiting until it sends the API certificate) and builds the listener, without listening. */
export async function buildEdge(config: EdgeConfig, opts: EdgeOptions): Promise<Edge> {
  const { logger } = opts;
  const sockets = controlSockets(opts.runDir);
  const routes: MemoryRouteTable = config.redisUrl
    ? await RedisRouteTable.create({ url: config.redisUrl, prefix: config.redisPrefix, logger })
    : new MemoryRouteTable();
  let gateway: Gateway | undefined;
  let boundPort = 0;
  const link = new ControlLink({
    socketPath: sockets.edge,
    logger,
    routes,
    sharedRoutes: config.redisUrl !== undefined,
    port: () => boundPort,
    onCloseTunnels: (hostname) => gateway?.closeTunnels(hostname),
  });
  try {
    await link.start();
  } catch (err) {
    link.close();
    await routes.close();
    throw err;
  }
  const forwarder = createForwarder({ socketPath: sockets.api, logger });
  const gw = new Gateway({
    publicHost: config.publicHost,
    limits: config.gateway,
    routes,
    apiCert: link.apiCert,
    acmeChallenges: link.acme,
    app: forwarder.handle,
    onUpgrade: forwarder.upgrade,
    logger,
  });
  gateway = gw;
  gw.onTunnelChange((hostname, open) => link.reportTunnels(hostname, open));
  const metricsTimer = setInterval(() => link.reportMetrics(gw.metrics()), METRICS_EVERY_MS);
  metricsTimer.unref();
  let closing: Promise<void> | undefined;
  return {
    gateway: gw,
    routes,
    link,
    async listen(override) {
      const addr = await gw.listen(override?.host ?? config.listen.host, override?.port ?? config.listen.port);
      boundPort = addr.port;
      // Connect descriptors name the port clients dial.
      link.reportListening(addr.port);
      return addr;
    },
    close(drainMs) {
      closing ??= (async () => {
        clearInterval(metricsTimer);
        await gw.close(drainMs);
        link.close();
        forwarder.close();
        await routes.close();
      })();
      return closing;
    },
  };
}
