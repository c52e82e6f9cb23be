import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from '../lib/log.js';
import type { GatewayLimits } from '../lib/limits.js';
import type { ProxiedSource } from '../lib/proxy-protocol.js';
import type { AcmeChallengeStore, KeyPair } from '../lib/tls.js';
import { API_TLS_OPTIONS } from './tls-profile.js';

export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface TerminatorOptions {
  publicHost: string;
  cert: KeyPair;
  limits: GatewayLimits;
  app: http.RequestListener;
  onUpgrade?: UpgradeHandler;
  acmeChallenges?: AcmeChallengeStore;
  logger: Logger;
}

/**
 * The in-process TLS endpoint for the API hostname (and for requests without SNI): TLS 1.2+,
 * an edge-sized handshake deadline, then Node's HTTP/1.1 server with header, request and
 * keep-alive timeouts. Also answers ACME TLS-ALPN-01 challenges.
 */
export class Terminator {
  readonly tlsServer: tls.Server;
  readonly httpServer: http.Server;
  private readonly acmeServer: tls.Server | undefined;
  /** Clients named by a PROXY header, by the connection's addresses, until its TLS socket exists. */
  private readonly proxied = new Map<string, ProxiedSource>();

  constructor(private readonly opts: TerminatorOptions) {
    const { limits, logger } = opts;
    this.tlsServer = tls.createServer({
      ...API_TLS_OPTIONS,
      key: opts.cert.keyPem,
      cert: opts.cert.certPem,
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: limits.tlsHandshakeTimeoutMs,
    });
    // Node only emits tlsClientError on a handshake timeout and leaves the socket open.
    this.tlsServer.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      logger.debug({ err: err.message }, 'tls handshake failed');
      socket.destroy();
    });

    this.httpServer = http.createServer(
      {
        headersTimeout: limits.httpHeadersTimeoutMs,
        requestTimeout: limits.httpRequestTimeoutMs,
        keepAliveTimeout: limits.httpKeepAliveTimeoutMs,
        maxHeaderSize: 16 * 1024,
        // How often header and request deadlines are checked (Node's default is 30 s).
        connectionsCheckingInterval: Math.min(1000, limits.httpHeadersTimeoutMs),
      },
      (req, res) => this.onRequest(req, res),
    );
    // This server never listens itself (it is fed connections), but Node starts the tracking
    // behind headersTimeout, requestTimeout and closeIdleConnections() on 'listening'.
    this.httpServer.emit('listening');
    this.httpServer.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (socket.writable && err.code !== 'ECONNRESET') socket.end(clientErrorResponse(err.code));
      socket.destroy();
    });
    this.httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      if (!this.checkHost(req)) {
        socket.end('HTTP/1.1 421 Misdirected Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      if (opts.onUpgrade) opts.onUpgrade(req, socket, head);
      else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    this.tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('error', () => socket.destroy());
      if (this.proxied.size > 0) this.adoptClient(socket);
      this.httpServer.emit('connection', socket);
    });

    if (opts.acmeChallenges) this.acmeServer = this.createAcmeServer(opts.acmeChallenges);
  }

  /**
   * Hands over a raw socket whose ClientHello bytes were unshifted back into it. `client`: the
   * address a trusted proxy's PROXY header named, which the request handlers then see as the TLS
   * socket's `remoteAddress` (and `remotePort`), so X-Forwarded-For to control carries it.
   */
  terminate(socket: net.Socket, client?: ProxiedSource): void {
    if (client && socket.remoteAddress) {
      // The TLS socket shares the TCP handle, hence its addresses: they find the client again.
      const key = connectionKey(socket);
      this.proxied.set(key, client);
      socket.once('close', () => this.proxied.delete(key));
    }
    this.tlsServer.emit('connection', socket);
  }

  private adoptClient(socket: tls.TLSSocket): void {
    const key = connectionKey(socket);
    const client = this.proxied.get(key);
    if (!client) return;
    this.proxied.delete(key);
    Object.defineProperties(socket, {
      remoteAddress: { value: client.address },
      remotePort: { value: client.port },
      remoteFamily: { value: client.address.includes(':') ? 'IPv6' : 'IPv4' },
    });
  }

  /** Whether ACME challenge certs exist for this name (then `answerAcme` handles the connection). */
  hasAcmeChallenge(serverName: string): boolean {
    return this.acmeServer !== undefined && this.opts.acmeChallenges?.get(serverName) !== undefined;
  }

  answerAcme(socket: Duplex): void {
    this.acmeServer?.emit('connection', socket);
  }

  /** Installs a new API certificate; connections already open keep theirs. */
  setCertificate(pair: KeyPair): void {
    this.tlsServer.setSecureContext({ ...API_TLS_OPTIONS, key: pair.keyPem, cert: pair.certPem });
  }

  /** Closes idle keep-alive connections; active requests finish. */
  closeIdle(): void {
    this.httpServer.closeIdleConnections();
  }

  closeAll(): void {
    this.httpServer.closeAllConnections();
    // Stops the deadline checker; the server was never bound, so the close error is expected.
    this.httpServer.close(() => {});
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!this.checkHost(req)) {
      const body = JSON.stringify({
        error: { code: 'MISDIRECTED_REQUEST', message: 'the Host header does not match the TLS server name' },
      });
      res.writeHead(421, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
      res.end(body);
      return;
    }
    this.opts.app(req, res);
  }

  /** SNI and Host must name the same server (no domain fronting through the API endpoint). */
  private checkHost(req: http.IncomingMessage): boolean {
    const servername = (req.socket as tls.TLSSocket).servername;
    if (!servername) return true;
    const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
    return host === servername.toLowerCase().replace(/\.$/, '');
  }

  private createAcmeServer(store: AcmeChallengeStore): tls.Server {
    const server = tls.createServer({
      ...API_TLS_OPTIONS,
      ALPNProtocols: ['acme-tls/1'],
      handshakeTimeout: this.opts.limits.tlsHandshakeTimeoutMs,
      SNICallback: (name, cb) => {
        const pair = store.get(name.toLowerCase());
        if (!pair) return cb(new Error('no ACME challenge for this name'));
        cb(null, tls.createSecureContext({ ...API_TLS_OPTIONS, key: pair.keyPem, cert: pair.certPem }));
      },
    });
    server.on('tlsClientError', (_err: Error, socket: tls.TLSSocket) => socket.destroy());
    // RFC 8737: the validation needs only the handshake; close once it is done.
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      socket.on('error', () => socket.destroy());
      socket.end();
    });
    return server;
  }
}

function connectionKey(s: net.Socket): string {
  return `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}|${s.localAddress ?? ''}|${s.localPort ?? ''}`;
}

function clientErrorResponse(code: string | undefined): string {
  const status =
    code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
  return `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
}
