import net from 'node:net';
import type { GatewayMetricsSnapshot } from '../lib/edge-metrics.js';
import { EDGE_LINK_VERSION, toEdgeSchema, type ToControl, type ToEdge } from '../lib/edge-link.js';
import type { Logger } from '../lib/log.js';
import { readLines, writeLine } from '../lib/ndjson.js';
import type { MemoryRouteTable } from '../lib/route-table.js';
import type { AcmeChallengeStore, CertificateSource, KeyPair } from '../lib/tls.js';

export interface ControlLinkOptions {
  /** control's `edge.sock`. */
  socketPath: string;
  logger: Logger;
  /** This host's routes, fed from this link (snapshots replace it). */
  routes: MemoryRouteTable;
  /** The port the edge accepts on (reported to control for connect descriptors). */
  port: () => number;
  /** Control asked to end every tunnel to a hostname. */
  onCloseTunnels: (hostname: string) => void;
  /** The edge's counters now (control asked for them). */
  metrics?: () => GatewayMetricsSnapshot;
}

/**
 * The edge's end of the link to control: it learns routes and certificates and reports open
 * tunnels. When control is away (restarting), the edge keeps routing with what it last knew and
 * reconnects with backoff; on reconnect it reports its open tunnels again.
 */
export class ControlLink {
  readonly apiCert: CertificateSource;
  readonly acme: AcmeChallengeStore;
  private socket: net.Socket | null = null;
  private cert: KeyPair | null = null;
  private readonly certListeners = new Set<(pair: KeyPair) => void>();
  private readonly challenges = new Map<string, KeyPair>();
  private readonly tunnels = new Map<string, number>();
  private readonly log: Logger;
  private closed = false;
  private delay = 100;
  private retry: NodeJS.Timeout | undefined;
  private firstCert: ((pair: KeyPair) => void) | undefined;

  constructor(private readonly opts: ControlLinkOptions) {
    this.log = opts.logger.child({ component: 'control-link' });
    this.apiCert = {
      current: () => {
        if (!this.cert) throw new Error('no API certificate from control yet');
        return this.cert;
      },
      onChange: (l) => {
        this.certListeners.add(l);
        return () => this.certListeners.delete(l);
      },
      close: async () => {},
    };
    this.acme = { get: (hostname) => this.challenges.get(hostname.toLowerCase()) };
  }

  /** Connects and resolves once control sent the API certificate (retrying until it does). */
  start(): Promise<void> {
    const ready = new Promise<void>((resolve) => {
      this.firstCert = () => resolve();
    });
    this.connect();
    return ready;
  }

  connected(): boolean {
    return this.socket !== null;
  }

  /** Reports the open tunnels to a hostname (called on every change). */
  reportTunnels(hostname: string, open: number): void {
    if (open === 0) this.tunnels.delete(hostname);
    else this.tunnels.set(hostname, open);
    this.send({ t: 'tunnels', hostname, open });
  }

  reportListening(port: number): void {
    this.send({ t: 'listening', port });
  }

  reportMetrics(metrics: GatewayMetricsSnapshot): void {
    this.send({ t: 'metrics', metrics });
  }

  /** Best effort, for a dying edge: resolves when written or after `ms`. */
  reportCrash(error: string, ms = 1_000): Promise<void> {
    const s = this.socket;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      s.write(`${JSON.stringify({ t: 'crash', pid: process.pid, error: error.slice(0, 2000) } satisfies ToControl)}\n`, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.socket?.destroy();
  }

  private send(msg: ToControl): void {
    if (this.socket) writeLine(this.socket, msg);
  }

  private connect(): void {
    if (this.closed) return;
    const socket = net.connect(this.opts.socketPath);
    let helloed = false;
    socket.on('connect', () => {
      writeLine(socket, { t: 'hello', v: EDGE_LINK_VERSION, pid: process.pid, port: this.opts.port() } satisfies ToControl);
    });
    readLines(
      socket,
      (value) => {
        const parsed = toEdgeSchema.safeParse(value);
        if (!parsed.success) {
          this.log.warn('malformed message from control');
          return;
        }
        if (!helloed) {
          if (parsed.data.t !== 'hello' || parsed.data.v !== EDGE_LINK_VERSION) {
            this.log.error({ got: parsed.data.t }, 'control speaks another edge link version');
            socket.destroy();
            return;
          }
          helloed = true;
          this.socket = socket;
          this.delay = 100;
          this.log.info('connected to control');
          for (const [hostname, open] of this.tunnels) writeLine(socket, { t: 'tunnels', hostname, open } satisfies ToControl);
          return;
        }
        this.onMessage(socket, parsed.data);
      },
      { onBadLine: (reason) => this.log.warn({ reason }, 'bad line from control') },
    );
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.socket === socket) {
        this.socket = null;
        this.log.warn('lost the link to control; routing with the last known routes');
      }
      if (this.closed) return;
      this.retry = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 2_000);
    });
  }

  private onMessage(socket: net.Socket, msg: ToEdge): void {
    switch (msg.t) {
      case 'cert':
        this.cert = msg.pair;
        if (this.firstCert) {
          this.firstCert(msg.pair);
          this.firstCert = undefined;
        } else {
          for (const l of this.certListeners) l(msg.pair);
        }
        return;
      case 'acme':
        if (msg.pair) this.challenges.set(msg.hostname.toLowerCase(), msg.pair);
        else this.challenges.delete(msg.hostname.toLowerCase());
        return;
      case 'routes':
        try {
          this.opts.routes.replaceRoutes(msg.routes);
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'ignoring an invalid route snapshot');
        }
        writeLine(socket, { t: 'ack', seq: msg.seq } satisfies ToControl);
        return;
      case 'route':
      case 'unroute':
        try {
          this.opts.routes.applyChange(msg.t === 'route' ? { op: 'add', hostname: msg.hostname, upstream: msg.upstream } : { op: 'remove', hostname: msg.hostname });
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'ignoring an invalid route');
        }
        writeLine(socket, { t: 'ack', seq: msg.seq } satisfies ToControl);
        return;
      case 'close-tunnels':
        this.opts.onCloseTunnels(msg.hostname);
        return;
      case 'report':
        if (this.opts.metrics) writeLine(socket, { t: 'metrics', metrics: this.opts.metrics() } satisfies ToControl);
        return;
      case 'hello':
        return;
    }
  }
}
