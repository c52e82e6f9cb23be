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
import { sessionUpgrade } from '../gateway/ws-session.js';
import type { Logger } from '../lib/log.js';
import { MemoryRouteTable, type RouteTable } from '../lib/route-table.js';

export interface EdgeOptions {
  logger: Logger;
  /** Holds control's sockets: `<runDir>/control/{api,edge}.sock`. */
  runDir: string;
}

export interface Edge {
  gateway: Gateway;
  /** What the listener routes by: this host's routes, then (with Redis) the shared ones. */
  routes: RouteTable;
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
  // Routes of this host's control come over the link; with Redis, those of other control planes too.
  const local = new MemoryRouteTable();
  // ioredis is loaded only when Redis is configured: the edge's heap stays small without it.
  const shared = config.redisUrl
    ? await (await import('../lib/redis-route-table.js')).RedisRouteTable.create({ url: config.redisUrl, prefix: config.redisPrefix, logger })
    : undefined;
  const routes = shared ? eitherTable(local, shared) : local;
  let gateway: Gateway | undefined;
  let boundPort = 0;
  const link = new ControlLink({
    socketPath: sockets.edge,
    logger,
    routes: local,
    port: () => boundPort,
    onCloseTunnels: (hostname) => gateway?.closeTunnels(hostname),
    metrics: () => gateway!.metrics(),
  });
  try {
    await link.start();
  } catch (err) {
    link.close();
    await shared?.close();
    throw err;
  }
  const forwarder = createForwarder({ socketPath: sockets.api, logger });
  // A session counts as attached while a tunnel (by SNI) or a browser relay (WebSocket) is open.
  const tunnelCounts = new Map<string, number>();
  const relayCounts = new Map<string, number>();
  const reportAttached = (hostname: string, counts: Map<string, number>, open: number) => {
    if (open === 0) counts.delete(hostname);
    else counts.set(hostname, open);
    link.reportTunnels(hostname, (tunnelCounts.get(hostname) ?? 0) + (relayCounts.get(hostname) ?? 0));
  };
  const upgrade = sessionUpgrade({
    socketPath: sockets.api,
    routes,
    limits: config.gateway,
    fallback: forwarder.upgrade,
    onRelays: (hostname, open) => reportAttached(hostname, relayCounts, open),
    logger,
  });
  const gw = new Gateway({
    publicHost: config.publicHost,
    limits: config.gateway,
    routes,
    apiCert: link.apiCert,
    acmeChallenges: link.acme,
    app: forwarder.handle,
    onUpgrade: upgrade,
    logger,
  });
  gateway = gw;
  gw.onTunnelChange((hostname, open) => reportAttached(hostname, tunnelCounts, open));
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
        await shared?.close();
      })();
      return closing;
    },
  };
}

/**
 * This host's routes first, then the shared table. A route is gone (and its tunnels closed)
 * only when neither has it: a Redis that restarted empty must not cut this host's sessions.
 */
function eitherTable(local: MemoryRouteTable, shared: RouteTable): RouteTable {
  const refuse = () => Promise.reject(new Error('the edge does not own routes'));
  return {
    add: refuse,
    remove: refuse,
    list: () => [...local.list(), ...shared.list().filter((r) => !local.lookup(r.hostname))],
    lookup: (hostname) => local.lookup(hostname) ?? shared.lookup(hostname),
    onRemove(listener) {
      const gone = (hostname: string) => {
        if (!local.lookup(hostname) && !shared.lookup(hostname)) listener(hostname);
      };
      const offs = [local.onRemove(gone), shared.onRemove(gone)];
      return () => offs.forEach((off) => off());
    },
    close: () => Promise.all([local.close(), shared.close()]).then(() => undefined),
  };
}
