import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import { emptyRejects, REJECT_REASONS, type GatewayMetricsSnapshot } from '../lib/edge-metrics.js';
import { EDGE_LINK_VERSION, toControlSchema, type ToControl, type ToEdge } from '../lib/edge-link.js';
import { normalizeHostname } from '../lib/hostname.js';
import type { Logger } from '../lib/log.js';
import { readLines, writeLine } from '../lib/ndjson.js';
import { Listeners } from '../lib/listeners.js';
import type { Route, RouteTable, Upstream } from '../lib/route-table.js';
import type { CertificateSource, KeyPair } from '../lib/tls.js';
import type { MemoryChallengeStore } from './certs/acme-challenges.js';

export interface EdgeLinkOptions {
  socketPath: string;
  logger: Logger;
  /** Whether the process at the other end may act as an edge (peer credentials); a string says why not. */
  checkPeer: (socket: net.Socket) => true | string;
  apiCert: CertificateSource;
  challenges: MemoryChallengeStore;
  /** The routes control owns (memory, or Redis shared with other control planes). */
  routes: RouteTable;
  /** An edge reported that it is dying of an unhandled error. */
  onCrash?: (report: { pid: number; error: string }) => void;
  /** An edge started accepting on the public port (ACME TLS-ALPN-01 can be answered from now on). */
  onEdgeListening?: (port: number) => void;
  /** How long a route change waits for the edges to apply it. */
  ackTimeoutMs?: number;
}

const MAX_DEPARTED = 1024;

interface Edge {
  socket: net.Socket;
  pid: number;
  port: number;
  acked: number;
  tunnels: Map<string, number>;
  metrics: GatewayMetricsSnapshot | null;
  /** Counts the edge's metrics reports (a fresh one was asked for). */
  reports: number;
}

/**
 * Control's end of the link to its edges. Every route change is sent to every connected edge
 * and a change resolves once they applied it (so a launch never answers before its route
 * works); each edge's open tunnels are summed per hostname for the sessions' connected/idle.
 */
export class EdgeLink {
  readonly routes: RouteTable;
  private readonly server: net.Server;
  private readonly edges = new Set<Edge>();
  private readonly log: Logger;
  private readonly tunnelListeners: Listeners<[hostname: string, open: number]>;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly ackWaiters = new Set<{ seq: number; edges: Set<Edge>; done: () => void }>();
  private seq = 0;
  private readonly reportWaiters = new Set<() => void>();
  /** Last counters of edges that left, by pid: the sums stay monotonic for Prometheus when a worker goes. */
  private readonly departed = new Map<number, GatewayMetricsSnapshot>();

  constructor(private readonly opts: EdgeLinkOptions) {
    this.log = opts.logger.child({ component: 'edge-link' });
    this.tunnelListeners = new Listeners(this.log, 'tunnel');
    this.routes = linkedRoutes(opts.routes, this);
    this.server = net.createServer((s) => this.onConnection(s));
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'edge link listener error'));
    this.unsubscribe.push(
      opts.apiCert.onChange((pair) => this.broadcast({ t: 'cert', pair: { certPem: pair.certPem, keyPem: pair.keyPem } })),
      opts.challenges.onChange((hostname, pair) => this.broadcast({ t: 'acme', hostname, pair })),
    );
  }

  async listen(): Promise<void> {
    rmSync(this.opts.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.opts.socketPath, 0o660);
  }

  async close(): Promise<void> {
    for (const u of this.unsubscribe) u();
    for (const w of this.ackWaiters) w.done();
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const e of this.edges) e.socket.destroy();
    await closed;
  }

  /** Edges connected now. */
  edgeCount(): number {
    return this.edges.size;
  }

  /** The port the edges accept on (the first edge's; all share the listener). */
  edgePort(): number | undefined {
    for (const e of this.edges) if (e.port > 0) return e.port;
    return undefined;
  }

  tunnelCount(hostname: string): number {
    let n = 0;
    for (const e of this.edges) n += e.tunnels.get(hostname) ?? 0;
    return n;
  }

  onTunnelChange(listener: (hostname: string, open: number) => void): () => void {
    return this.tunnelListeners.add(listener);
  }

  /** Ends every tunnel to `hostname` on every edge. */
  closeTunnels(hostname: string): void {
    this.broadcast({ t: 'close-tunnels', hostname });
  }

  /** Asks every edge for its counters now and sums them (an edge that is slow counts with its last report). */
  async freshMetrics(timeoutMs = 1_000): Promise<GatewayMetricsSnapshot> {
    const asked = new Map([...this.edges].map((e) => [e, e.reports]));
    this.broadcast({ t: 'report' });
    await new Promise<void>((resolve) => {
      const check = () => {
        if ([...asked].every(([e, n]) => e.reports > n || !this.edges.has(e))) done();
      };
      const timer = setTimeout(() => done(), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.reportWaiters.delete(check);
        resolve();
      };
      this.reportWaiters.add(check);
      check();
    });
    return this.metrics();
  }

  /** The edges' counters, summed (their last reports, and those of edges that left); gauges of connected edges only. */
  metrics(): GatewayMetricsSnapshot {
    const sum: GatewayMetricsSnapshot = {
      accepted: 0,
      routed: 0,
      terminated: 0,
      rejected: emptyRejects(),
      bytesUpstream: 0,
      bytesDownstream: 0,
      activeTunnels: 0,
      activeConnections: 0,
      pendingConnections: 0,
    };
    const addCounters = (m: GatewayMetricsSnapshot) => {
      sum.accepted += m.accepted;
      sum.routed += m.routed;
      sum.terminated += m.terminated;
      for (const r of REJECT_REASONS) sum.rejected[r] += m.rejected[r] ?? 0;
      sum.bytesUpstream += m.bytesUpstream;
      sum.bytesDownstream += m.bytesDownstream;
    };
    for (const m of this.departed.values()) addCounters(m);
    for (const e of this.edges) {
      const m = e.metrics;
      if (!m) continue;
      addCounters(m);
      sum.activeTunnels += m.activeTunnels;
      sum.activeConnections += m.activeConnections;
      sum.pendingConnections += m.pendingConnections;
    }
    return sum;
  }

  private retire(pid: number, m: GatewayMetricsSnapshot): void {
    // Bounded: past this many departed workers the oldest is forgotten (one counter reset for Prometheus).
    if (this.departed.size >= MAX_DEPARTED) this.departed.delete(this.departed.keys().next().value as number);
    this.departed.set(pid, m);
  }

  /** Sends a route change to every edge; resolves when all of them applied it (or after the timeout). */
  async sendRoute(change: { op: 'add'; hostname: string; upstream: Upstream } | { op: 'remove'; hostname: string }): Promise<void> {
    const seq = ++this.seq;
    const msg: ToEdge = change.op === 'add' ? { t: 'route', seq, op: 'add', hostname: change.hostname, upstream: change.upstream } : { t: 'unroute', seq, hostname: change.hostname };
    const waiting = new Set<Edge>();
    for (const e of this.edges) if (writeLine(e.socket, msg)) waiting.add(e);
    if (waiting.size === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn({ seq, hostname: change.hostname, waiting: waiting.size }, 'edges did not confirm a route change in time');
        done();
      }, this.opts.ackTimeoutMs ?? 2_000);
      const waiter = {
        seq,
        edges: waiting,
        done: () => {
          clearTimeout(timer);
          this.ackWaiters.delete(waiter);
          resolve();
        },
      };
      const done = waiter.done;
      this.ackWaiters.add(waiter);
    });
  }

  private broadcast(msg: ToEdge): void {
    for (const e of this.edges) writeLine(e.socket, msg);
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    const allowed = this.opts.checkPeer(socket);
    if (allowed !== true) {
      this.log.warn({ reason: allowed }, 'refused a connection on the edge link');
      socket.destroy();
      return;
    }
    let edge: Edge | undefined;
    readLines(
      socket,
      (value) => {
        const parsed = toControlSchema.safeParse(value);
        if (!parsed.success) {
          this.log.warn({ issues: parsed.error.issues.slice(0, 3).map((i) => i.path.join('.')) }, 'malformed message on the edge link');
          return;
        }
        const msg = parsed.data;
        if (!edge) {
          if (msg.t !== 'hello' || msg.v !== EDGE_LINK_VERSION) {
            this.log.warn({ got: msg.t }, 'edge link: expected hello of our version');
            socket.destroy();
            return;
          }
          edge = { socket, pid: msg.pid, port: msg.port, acked: 0, tunnels: new Map(), metrics: null, reports: 0 };
          // The same process again (a link blip): its reports still hold what it counted before.
          this.departed.delete(msg.pid);
          this.welcome(edge);
          return;
        }
        this.onMessage(edge, msg);
      },
      { onBadLine: (reason) => this.log.warn({ reason }, 'bad line on the edge link') },
    );
    socket.once('close', () => {
      if (!edge || !this.edges.delete(edge)) return;
      this.log.info({ pid: edge.pid }, 'edge disconnected');
      if (edge.metrics) this.retire(edge.pid, edge.metrics);
      for (const w of this.ackWaiters) {
        w.edges.delete(edge);
        if (w.edges.size === 0) w.done();
      }
      for (const hostname of edge.tunnels.keys()) this.notifyTunnels(hostname);
    });
  }

  private welcome(edge: Edge): void {
    const { socket } = edge;
    writeLine(socket, { t: 'hello', v: EDGE_LINK_VERSION } satisfies ToEdge);
    const cert: KeyPair = this.opts.apiCert.current();
    writeLine(socket, { t: 'cert', pair: { certPem: cert.certPem, keyPem: cert.keyPem } } satisfies ToEdge);
    for (const [hostname, pair] of this.opts.challenges.entries()) writeLine(socket, { t: 'acme', hostname, pair } satisfies ToEdge);
    const routes: Route[] = this.opts.routes.list();
    writeLine(socket, { t: 'routes', seq: this.seq, routes } satisfies ToEdge);
    this.edges.add(edge);
    this.log.info({ pid: edge.pid, port: edge.port, routes: routes.length }, 'edge connected');
    if (edge.port > 0) this.opts.onEdgeListening?.(edge.port);
  }

  private onMessage(edge: Edge, msg: ToControl): void {
    switch (msg.t) {
      case 'ack':
        edge.acked = Math.max(edge.acked, msg.seq);
        for (const w of this.ackWaiters) {
          if (w.seq <= edge.acked && w.edges.delete(edge) && w.edges.size === 0) w.done();
        }
        return;
      case 'tunnels': {
        const before = edge.tunnels.get(msg.hostname) ?? 0;
        if (msg.open === 0) edge.tunnels.delete(msg.hostname);
        else edge.tunnels.set(msg.hostname, msg.open);
        if (before !== msg.open) this.notifyTunnels(msg.hostname);
        return;
      }
      case 'listening':
        edge.port = msg.port;
        this.opts.onEdgeListening?.(msg.port);
        return;
      case 'metrics':
        edge.metrics = { ...msg.metrics, rejected: { ...emptyRejects(), ...msg.metrics.rejected } };
        edge.reports++;
        for (const w of this.reportWaiters) w();
        return;
      case 'crash':
        this.opts.onCrash?.({ pid: msg.pid, error: msg.error });
        return;
      case 'hello':
        return;
    }
  }

  private notifyTunnels(hostname: string): void {
    this.tunnelListeners.emit(hostname, this.tunnelCount(hostname));
  }
}

/** The table the session manager writes: the owner's table, then the edges, confirmed. */
function linkedRoutes(inner: RouteTable, link: EdgeLink): RouteTable {
  return {
    async add(hostname, upstream) {
      await inner.add(hostname, upstream);
      await link.sendRoute({ op: 'add', hostname: normalizeHostname(hostname) ?? hostname, upstream });
    },
    async remove(hostname) {
      const removed = await inner.remove(hostname);
      await link.sendRoute({ op: 'remove', hostname: normalizeHostname(hostname) ?? hostname });
      return removed;
    },
    list: () => inner.list(),
    lookup: (hostname) => inner.lookup(hostname),
    onRemove: (listener) => inner.onRemove(listener),
    close: () => inner.close(),
  };
}
