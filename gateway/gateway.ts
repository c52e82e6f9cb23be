import { once } from 'node:events';
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import net, { type AddressInfo } from 'node:net';
import { limitKey, type GatewayLimits } from '../lib/limits.js';
import type { Logger } from '../lib/log.js';
import type { AcmeChallengeStore, CertificateSource } from '../lib/tls.js';
import { newHelloScan, parseClientHello } from './client-hello.js';
import { CONN, destroyOnError, type Conn, type EdgeSocket } from './conn.js';
import { HelloBuffer } from './hello-buffer.js';
import { IpCaps } from './ip-caps.js';
import { proxyStep } from './proxy-step.js';
import { emptyRejects, type GatewayMetricsSnapshot, type RejectReason } from '../lib/edge-metrics.js';
import { Listeners } from '../lib/listeners.js';
import { looksLikeProxyHeader } from '../lib/proxy-protocol.js';
import { TrustedPeers } from '../lib/proxy-protocol-trust.js';
import { isAdmitted, normalizeAddress, type RouteTable, type Upstream } from '../lib/route-table.js';
import { ALERT_ACCESS_DENIED, ALERT_UNRECOGNIZED_NAME, PLAIN_HTTP_RESPONSE } from './refusals.js';
import { Terminator, type UpgradeHandler } from './terminate.js';
import { Tunnel, type TunnelOwner } from './tunnel.js';
import { TunnelSet } from './tunnel-set.js';

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

/** See Gateway#onTunnelChange. */
export type TunnelListener = (hostname: string, openTunnels: number) => void;

/**
 * The single TLS port. Peeks each connection's ClientHello without consuming it, then:
 * a session hostname in the route table → raw byte tunnel to its upstream; the API host
 * or no SNI → TLS terminated here and served over HTTP; anything else → closed.
 *
 * Deadlines (ClientHello, upstream connect, tunnel idle) are checked by one coarse sweep rather than
 * a timer per connection: on a busy edge, per-connection timers and closures were a measurable part
 * of the cost of each connection (docs/benchmarks.md, "Gateway").
 */
export class Gateway {
  private readonly server: net.Server;
  private readonly terminator: Terminator;
  private readonly log: Logger;
  private readonly caps: IpCaps;
  private readonly tunnels = new TunnelSet();
  private readonly terminated = new Set<net.Socket>();
  /**
   * Connections still sending their ClientHello → their deadline (performance.now() ms). Every entry has
   * the same timeout, so insertion order is deadline order and the sweep stops at the first live one.
   */
  private readonly peeking = new Map<EdgeSocket, number>();
  /** Tunnels waiting for their upstream → deadline; ordered the same way. */
  private readonly connecting = new Map<Tunnel, number>();
  private open = 0;
  private closing = false;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly tunnelListeners: Listeners<[hostname: string, open: number]>;
  private readonly counters = { accepted: 0, routed: 0, terminated: 0, rejected: emptyRejects() };
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly idleSweepMs: number;
  private nextIdleSweep = 0;
  // One function per gateway for each per-connection event (`this` is the socket).
  private readonly onClientClose: (this: EdgeSocket) => void;
  private readonly onPeekData: (this: EdgeSocket, chunk: Buffer) => void;
  private readonly onPeekEnd: (this: EdgeSocket) => void;
  private readonly tunnelOwner: TunnelOwner;
  private readonly trustedPeers: TrustedPeers | null;

  constructor(private readonly opts: GatewayOptions) {
    this.log = opts.logger.child({ component: 'gateway' });
    const trusted = opts.limits.proxyProtocol?.trusted;
    this.trustedPeers = trusted ? new TrustedPeers(trusted) : null;
    this.caps = new IpCaps(opts.limits);
    this.tunnelListeners = new Listeners(this.log, 'tunnel');
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
    const gw = this;
    this.onClientClose = function (this: EdgeSocket) {
      gw.clientClosed(this);
    };
    this.onPeekData = function (this: EdgeSocket, chunk: Buffer) {
      gw.peekData(this, chunk);
    };
    this.onPeekEnd = function (this: EdgeSocket) {
      const c = this[CONN];
      if (c?.peeking) gw.peekFailed(this, c, 'closed_early');
    };
    this.tunnelOwner = {
      tunnelConnected: (t) => {
        this.connecting.delete(t);
        this.counters.routed++;
        this.notifyTunnels(t.hostname);
      },
      tunnelFailed: (t, err) => {
        this.connecting.delete(t);
        this.counters.rejected.upstream_unreachable++;
        this.log.warn({ hostname: t.hostname, err: err.message }, 'upstream unreachable');
      },
      tunnelClosed: (t) => this.tunnelClosed(t),
    };
    // Both legs without Nagle (interactive xpra traffic); set at accept, before any JS runs for the socket.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (s) => this.onConnection(s));
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));

    const { clientHelloTimeoutMs, upstreamConnectTimeoutMs, tunnelIdleTimeoutMs } = opts.limits;
    // Deadlines fire at most one tick late: a tenth of the shortest one, at most 250 ms.
    const tickMs = Math.max(5, Math.min(250, Math.min(clientHelloTimeoutMs, upstreamConnectTimeoutMs) / 10));
    // An idle tunnel closes between tunnelIdleTimeoutMs and that plus two idle sweeps (≤ 10 s) after its last byte.
    this.idleSweepMs = Math.max(tickMs, Math.min(5000, tunnelIdleTimeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweep(), tickMs);
    this.sweepTimer.unref();
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
    return this.tunnels.count(hostname);
  }

  /**
   * Called with a hostname and its open tunnel count whenever a tunnel to it connects
   * upstream or closes (the session manager's connected/idle signal). Listeners must not throw.
   */
  onTunnelChange(listener: TunnelListener): () => void {
    return this.tunnelListeners.add(listener);
  }

  metrics(): GatewayMetricsSnapshot {
    const { up, down, active } = this.tunnels.totals();
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
    for (const s of [...this.peeking.keys()]) {
      const c = s[CONN];
      if (c) this.peekFailed(s, c, 'shutting_down');
    }
    this.terminator.closeIdle();
    const deadline = Date.now() + drainMs;
    while (this.open > 0 && Date.now() < deadline) {
      this.terminator.closeIdle();
      await new Promise((r) => setTimeout(r, 50));
    }
    if (this.open > 0) this.log.info({ open: this.open }, 'drain timeout; closing remaining connections');
    this.tunnels.closeAll();
    this.terminator.closeAll();
    for (const s of this.terminated) s.destroy();
    clearInterval(this.sweepTimer);
    await closed;
  }

  private reject(socket: net.Socket, reason: RejectReason): void {
    this.counters.rejected[reason]++;
    socket.destroy();
  }

  private onConnection(socket: EdgeSocket): void {
    this.counters.accepted++;
    socket.on('error', destroyOnError);
    if (this.closing) return this.reject(socket, 'shutting_down');
    if (this.open >= this.opts.limits.maxConnections) return this.reject(socket, 'capacity');
    // remoteAddress is a getpeername(2); only for connections that got past the cheap checks.
    const ip = socket.remoteAddress ? normalizeAddress(socket.remoteAddress) : 'unknown';
    // A trusted proxy's connections are counted under the client its PROXY header names, once read.
    const awaitingProxy = this.trustedPeers?.has(ip) ?? false;
    const key = awaitingProxy ? null : (limitKey(ip) ?? ip);
    const over = key === null ? null : this.caps.refusal(key);
    if (over) return this.reject(socket, over);

    this.open++;
    if (key !== null) this.caps.add(key);
    socket[CONN] = { ip, key, awaitingProxy, proxied: null, peeking: true, buf: null, scan: undefined };
    this.peeking.set(socket, performance.now() + this.opts.limits.clientHelloTimeoutMs);
    socket.on('close', this.onClientClose);
    socket.on('data', this.onPeekData);
    socket.on('end', this.onPeekEnd);
  }

  private clientClosed(socket: EdgeSocket): void {
    const c = socket[CONN];
    if (!c) return;
    this.open--;
    if (c.key !== null) this.caps.closed(c.key);
    this.terminated.delete(socket);
    if (c.peeking) this.peekFailed(socket, c, 'closed_early');
  }

  /** Reads until the ClientHello is complete (or the deadline, cap or a parse error ends it). */
  private peekData(socket: EdgeSocket, chunk: Buffer): void {
    const c = socket[CONN];
    if (!c?.peeking) return;
    // Most ClientHellos arrive in one read: parse that chunk as it is, and copy only when one does not.
    let view = chunk;
    if (c.buf) {
      c.buf.append(chunk);
      view = c.buf.view();
    }
    if (c.awaitingProxy) {
      const step = proxyStep(c, view);
      if (step.kind === 'wait') return;
      if (step.kind === 'refuse') {
        this.log.debug({ peer: c.ip, reason: step.detail }, 'PROXY header refused');
        return this.peekFailed(socket, c, step.reason);
      }
      // Counted under the client the header names from here on (or the proxy's own address, if none).
      const key = limitKey(c.ip) ?? c.ip;
      const over = this.caps.refusal(key);
      if (over) return this.peekFailed(socket, c, over);
      c.key = key;
      this.caps.add(key);
      if (step.rest.length === 0) return;
      view = step.rest;
    }
    const result = parseClientHello(view, this.opts.limits.maxClientHelloBytes, c.scan);
    if (result.kind === 'incomplete') {
      if (!c.buf) {
        c.buf = new HelloBuffer(Math.max(2048, view.length * 2));
        c.buf.append(view);
        c.scan = newHelloScan();
      }
      return;
    }
    this.endPeek(socket, c);
    socket.pause();
    switch (result.kind) {
      case 'ok':
        return this.dispatch(socket, view, result.serverName, result.alpn);
      case 'not-tls':
        // A PROXY header from a peer not trusted to send one (v1's "PROXY " also looks like HTTP).
        if (looksLikeProxyHeader(view)) return this.reject(socket, 'proxy_untrusted');
        if (result.http) return this.answer(socket, 'plain_http', PLAIN_HTTP_RESPONSE);
        return this.reject(socket, 'not_tls');
      case 'too-large':
        return this.reject(socket, 'too_large');
      case 'invalid':
        this.log.debug({ reason: result.reason }, 'invalid client hello');
        return this.reject(socket, 'invalid');
    }
  }

  private endPeek(socket: EdgeSocket, c: Conn): void {
    c.peeking = false;
    c.buf = null;
    c.scan = undefined;
    this.peeking.delete(socket);
    if (c.key !== null) this.caps.peeked(c.key);
    socket.off('data', this.onPeekData);
    socket.off('end', this.onPeekEnd);
  }

  private peekFailed(socket: EdgeSocket, c: Conn, reason: RejectReason): void {
    this.endPeek(socket, c);
    this.reject(socket, reason);
  }

  /** The coarse timer: ClientHello and upstream connect deadlines every tick, idle tunnels every idle sweep. */
  private sweep(): void {
    const now = performance.now();
    for (const [socket, deadline] of this.peeking) {
      if (deadline > now) break;
      const c = socket[CONN];
      if (c) this.peekFailed(socket, c, c.awaitingProxy ? 'proxy_timeout' : 'client_hello_timeout');
      else this.peeking.delete(socket);
    }
    for (const [t, deadline] of this.connecting) {
      if (deadline > now) break;
      this.connecting.delete(t);
      t.fail(new Error('upstream connect timeout'));
    }
    if (now < this.nextIdleSweep) return;
    this.nextIdleSweep = now + this.idleSweepMs;
    const idleMs = this.opts.limits.tunnelIdleTimeoutMs;
    for (const t of [...this.tunnels.all()]) if (now - t.touch(now) >= idleMs) t.destroy();
  }

  private dispatch(socket: net.Socket, hello: Buffer, serverName: string | null, alpn: string[]): void {
    if (serverName !== null && alpn.length === 1 && alpn[0] === 'acme-tls/1' && this.terminator.hasAcmeChallenge(serverName)) {
      this.counters.terminated++;
      return this.handOver(socket, hello, (s) => this.terminator.answerAcme(s));
    }
    if (serverName === null || serverName === this.opts.publicHost) {
      this.counters.terminated++;
      const client = (socket as EdgeSocket)[CONN]?.proxied ?? undefined;
      return this.handOver(socket, hello, (s) => this.terminator.terminate(s, client));
    }
    const upstream = this.opts.routes.lookup(serverName);
    if (!upstream) return this.answer(socket, 'unknown_sni', ALERT_UNRECOGNIZED_NAME);
    // Only the address that asked for a connect token reaches the session's xpra, and only a few at once.
    const ip = (socket as EdgeSocket)[CONN]?.ip ?? 'unknown';
    if (!isAdmitted(upstream, ip, Date.now())) {
      this.log.info({ hostname: serverName, ip }, 'tunnel refused: address not admitted');
      return this.answer(socket, 'not_admitted', ALERT_ACCESS_DENIED);
    }
    if (this.tunnels.count(serverName) >= this.opts.limits.maxTunnelsPerRoute) {
      this.log.warn({ hostname: serverName, ip }, 'tunnel refused: too many tunnels to this route');
      return this.answer(socket, 'route_tunnel_limit', ALERT_ACCESS_DENIED);
    }
    this.tunnel(socket, hello, serverName, upstream);
  }

  /** Sends `reply` (a fatal TLS alert, or the plain-HTTP 400), then closes. */
  private answer(socket: net.Socket, reason: RejectReason, reply: Buffer | string): void {
    this.counters.rejected[reason]++;
    socket.end(reply);
    socket.setTimeout(1000, () => socket.destroy());
  }

  /** Puts the peeked bytes back so the TLS server reads the ClientHello itself. */
  private handOver(socket: net.Socket, hello: Buffer, to: (s: net.Socket) => void): void {
    this.terminated.add(socket);
    socket.unshift(hello);
    to(socket);
  }

  private tunnel(socket: net.Socket, hello: Buffer, hostname: string, upstream: Upstream): void {
    const now = performance.now();
    const tunnel = new Tunnel(socket, upstream, hello, hostname, this.tunnelOwner, now);
    this.tunnels.add(tunnel);
    this.connecting.set(tunnel, now + this.opts.limits.upstreamConnectTimeoutMs);
  }

  private tunnelClosed(t: Tunnel): void {
    this.connecting.delete(t);
    this.tunnels.remove(t);
    this.notifyTunnels(t.hostname);
  }

  private notifyTunnels(hostname: string): void {
    this.tunnelListeners.emit(hostname, this.tunnelCount(hostname));
  }

  /**
   * Ends every tunnel to `hostname` (the route stays). A withdrawn route calls it (the session
   * is gone); an operator can call it to drop a session's clients. Returns how many it ended.
   */
  closeTunnels(hostname: string): number {
    return this.tunnels.closeHost(hostname);
  }
}
