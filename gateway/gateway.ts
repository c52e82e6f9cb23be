import { once } from 'node:events';
import type http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { GatewayLimits } from '../lib/limits.js';
import type { Logger } from '../lib/log.js';
import type { AcmeChallengeStore, CertificateSource } from '../lib/tls.js';
import { newHelloScan, parseClientHello } from './client-hello.js';
import { HelloBuffer } from './hello-buffer.js';
import { emptyRejects, type GatewayMetricsSnapshot, type RejectReason } from '../lib/edge-metrics.js';
import type { RouteTable } from '../lib/route-table.js';
import { Terminator, type UpgradeHandler } from './terminate.js';
import { Tunnel } from './tunnel.js';

export interface GatewayOptions {
  /** The API hostname: its TLS is terminated here and served by `app`. */
  publicHost: string;
  limits: GatewayLimits;
  routes: RouteTable;
  apiCert: CertificateSource;
  acmeChallenges?: AcmeChallengeStore;
  app: http.RequestListener;
  onUpgrade?: UpgradeHandler;
  logger: Logger;
}

/** TLS alert, fatal, unrecognized_name (RFC 6066 §3): the answer to an unknown SNI. */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);
const PLAIN_HTTP_BODY = 'This port speaks TLS only. Use https:// (or xpra ssl://) to reach HackStream.\n';
const PLAIN_HTTP_RESPONSE =
  'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n' +
  `Content-Length: ${Buffer.byteLength(PLAIN_HTTP_BODY)}\r\n\r\n${PLAIN_HTTP_BODY}`;

/**
 * The single TLS port. Peeks each connection's ClientHello without consuming it, then:
 * a session hostname in the route table → raw byte tunnel to its upstream; the API host
 * or no SNI → TLS terminated here and served over HTTP; anything else → closed.
 */
/** See Gateway#onTunnelChange. */
export type TunnelListener = (hostname: string, openTunnels: number) => void;

export class Gateway {
  private readonly server: net.Server;
  private readonly terminator: Terminator;
  private readonly log: Logger;
  private readonly perIp = new Map<string, number>();
  private readonly pendingPerIp = new Map<string, number>();
  private readonly tunnels = new Map<string, Set<Tunnel>>();
  private readonly terminated = new Set<net.Socket>();
  /** Connections still sending their ClientHello, each with the function that aborts it. */
  private readonly peeking = new Map<net.Socket, () => void>();
  private open = 0;
  private closing = false;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly tunnelListeners = new Set<TunnelListener>();
  private readonly counters = { accepted: 0, routed: 0, terminated: 0, rejected: emptyRejects(), bytesUp: 0, bytesDown: 0 };

  constructor(private readonly opts: GatewayOptions) {
    this.log = opts.logger.child({ component: 'gateway' });
    this.terminator = new Terminator({
      publicHost: opts.publicHost,
      cert: opts.apiCert.current(),
      limits: opts.limits,
      app: opts.app,
      logger: this.log,
      ...(opts.onUpgrade ? { onUpgrade: opts.onUpgrade } : {}),
      ...(opts.acmeChallenges ? { acmeChallenges: opts.acmeChallenges } : {}),
    });
    this.unsubscribe.push(
      opts.apiCert.onChange((pair) => {
        this.terminator.setCertificate(pair);
        this.log.info('api certificate reloaded');
      }),
      opts.routes.onRemove((hostname) => this.closeTunnels(hostname)),
    );
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (s) => this.onConnection(s));
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    this.server.listen({ host, port, backlog: 4096 });
    await once(this.server, 'listening');
    return this.address();
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Open tunnels to a session hostname on this gateway. */
  tunnelCount(hostname: string): number {
    return this.tunnels.get(hostname)?.size ?? 0;
  }

  /**
   * Called with a hostname and its open tunnel count whenever a tunnel to it connects
   * upstream or closes (the session manager's connected/idle signal). Listeners must not throw.
   */
  onTunnelChange(listener: TunnelListener): () => void {
    this.tunnelListeners.add(listener);
    return () => this.tunnelListeners.delete(listener);
  }

  metrics(): GatewayMetricsSnapshot {
    let up = this.counters.bytesUp;
    let down = this.counters.bytesDown;
    let active = 0;
    for (const set of this.tunnels.values()) {
      for (const t of set) {
        up += t.bytesFromClient;
        down += t.bytesToClient;
        active++;
      }
    }
    const c = this.counters;
    return {
      accepted: c.accepted,
      routed: c.routed,
      terminated: c.terminated,
      rejected: { ...c.rejected },
      bytesUpstream: up,
      bytesDownstream: down,
      activeTunnels: active,
      activeConnections: this.open,
      pendingConnections: this.peeking.size,
    };
  }

  /**
   * Graceful shutdown: stop accepting, drop connections still in their ClientHello, close
   * idle keep-alive connections, let tunnels and requests drain up to `drainMs`, then cut the rest.
   */
  async close(drainMs = this.opts.limits.shutdownDrainMs): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const u of this.unsubscribe) u();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const abort of [...this.peeking.values()]) abort();
    this.terminator.closeIdle();
    const deadline = Date.now() + drainMs;
    while (this.open > 0 && Date.now() < deadline) {
      this.terminator.closeIdle();
      await new Promise((r) => setTimeout(r, 50));
    }
    if (this.open > 0) this.log.info({ open: this.open }, 'drain timeout; closing remaining connections');
    for (const set of this.tunnels.values()) for (const t of [...set]) t.destroy();
    this.terminator.closeAll();
    for (const s of this.terminated) s.destroy();
    await closed;
  }

  private reject(socket: net.Socket, reason: RejectReason): void {
    this.counters.rejected[reason]++;
    socket.destroy();
  }

  private onConnection(socket: net.Socket): void {
    this.counters.accepted++;
    const ip = normalizeIp(socket.remoteAddress);
    socket.on('error', () => socket.destroy());
    if (this.closing) return this.reject(socket, 'shutting_down');
    if (this.open >= this.opts.limits.maxConnections) return this.reject(socket, 'capacity');
    if ((this.perIp.get(ip) ?? 0) >= this.opts.limits.maxConnectionsPerIp) return this.reject(socket, 'per_ip_limit');
    if ((this.pendingPerIp.get(ip) ?? 0) >= this.opts.limits.maxPendingPerIp) return this.reject(socket, 'pending_limit');

    this.open++;
    bump(this.perIp, ip, 1);
    socket.once('close', () => {
      this.open--;
      bump(this.perIp, ip, -1);
    });
    this.peek(socket, ip);
  }

  /** Reads until the ClientHello is complete (or the deadline, cap or a parse error ends it). */
  private peek(socket: net.Socket, ip: string): void {
    this.peeking.set(socket, () => finish() && this.reject(socket, 'shutting_down'));
    bump(this.pendingPerIp, ip, 1);
    const buf = new HelloBuffer();
    const scan = newHelloScan();
    let done = false;
    const finish = () => {
      if (done) return false;
      done = true;
      this.peeking.delete(socket);
      bump(this.pendingPerIp, ip, -1);
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      return true;
    };
    const timer = setTimeout(() => finish() && this.reject(socket, 'client_hello_timeout'), this.opts.limits.clientHelloTimeoutMs);
    const onEnd = () => finish() && this.reject(socket, 'closed_early');
    const onData = (chunk: Buffer) => {
      buf.append(chunk);
      const result = parseClientHello(buf.view(), this.opts.limits.maxClientHelloBytes, scan);
      if (result.kind === 'incomplete') return;
      finish();
      socket.pause();
      switch (result.kind) {
        case 'ok':
          return this.dispatch(socket, buf.take(), result.serverName, result.alpn);
        case 'not-tls':
          if (result.http) return this.answerPlainHttp(socket);
          return this.reject(socket, 'not_tls');
        case 'too-large':
          return this.reject(socket, 'too_large');
        case 'invalid':
          this.log.debug({ reason: result.reason }, 'invalid client hello');
          return this.reject(socket, 'invalid');
      }
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  }

  private dispatch(socket: net.Socket, hello: Buffer, serverName: string | null, alpn: string[]): void {
    if (serverName !== null && alpn.length === 1 && alpn[0] === 'acme-tls/1' && this.terminator.hasAcmeChallenge(serverName)) {
      this.counters.terminated++;
      return this.handOver(socket, hello, (s) => this.terminator.answerAcme(s));
    }
    if (serverName === null || serverName === this.opts.publicHost) {
      this.counters.terminated++;
      return this.handOver(socket, hello, (s) => this.terminator.terminate(s));
    }
    const upstream = this.opts.routes.lookup(serverName);
    if (!upstream) {
      this.counters.rejected.unknown_sni++;
      socket.end(ALERT_UNRECOGNIZED_NAME);
      socket.setTimeout(1000, () => socket.destroy());
      return;
    }
    this.tunnel(socket, hello, serverName, upstream);
  }

  /** Puts the peeked bytes back so the TLS server reads the ClientHello itself. */
  private handOver(socket: net.Socket, hello: Buffer, to: (s: net.Socket) => void): void {
    this.terminated.add(socket);
    socket.once('close', () => this.terminated.delete(socket));
    socket.unshift(hello);
    to(socket);
  }

  private tunnel(socket: net.Socket, hello: Buffer, hostname: string, upstream: { host: string; port: number }): void {
    let set = this.tunnels.get(hostname);
    if (!set) this.tunnels.set(hostname, (set = new Set()));
    const tunnels = set;
    const tunnel = new Tunnel({
      client: socket,
      upstream,
      head: hello,
      connectTimeoutMs: this.opts.limits.upstreamConnectTimeoutMs,
      idleTimeoutMs: this.opts.limits.tunnelIdleTimeoutMs,
      onConnect: (ok, err) => {
        if (ok) {
          this.counters.routed++;
          this.notifyTunnels(hostname);
        } else {
          this.counters.rejected.upstream_unreachable++;
          this.log.warn({ hostname, err: err?.message }, 'upstream unreachable');
        }
      },
      onClose: (t) => {
        this.counters.bytesUp += t.bytesFromClient;
        this.counters.bytesDown += t.bytesToClient;
        tunnels.delete(t);
        if (tunnels.size === 0 && this.tunnels.get(hostname) === tunnels) this.tunnels.delete(hostname);
        this.notifyTunnels(hostname);
      },
    });
    tunnels.add(tunnel);
  }

  private notifyTunnels(hostname: string): void {
    const n = this.tunnelCount(hostname);
    for (const l of this.tunnelListeners) {
      try {
        l(hostname, n);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'tunnel listener failed');
      }
    }
  }

  private answerPlainHttp(socket: net.Socket): void {
    this.counters.rejected.plain_http++;
    socket.end(PLAIN_HTTP_RESPONSE);
    socket.setTimeout(1000, () => socket.destroy());
  }

  /**
   * Ends every tunnel to `hostname` (the route stays). A withdrawn route calls it (the session
   * is gone); an operator can call it to drop a session's clients. Returns how many it ended.
   */
  closeTunnels(hostname: string): number {
    const set = this.tunnels.get(hostname);
    if (!set) return 0;
    const all = [...set];
    for (const t of all) t.destroy();
    return all.length;
  }
}

function bump(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

function normalizeIp(addr: string | undefined): string {
  if (!addr) return 'unknown';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}
