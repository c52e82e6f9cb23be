import http from 'node:http';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { GatewayLimits } from '../lib/limits.js';
import type { Logger } from '../lib/log.js';
import { normalizeAddress, type RouteTable } from '../lib/route-table.js';
import type { UpgradeHandler } from './terminate.js';

export interface SessionUpgradeOptions {
  /** control's `api.sock`: asked whether the upgrade's cookie owns the session. */
  socketPath: string;
  routes: Pick<RouteTable, 'lookup' | 'onRemove'>;
  limits: Pick<GatewayLimits, 'upstreamConnectTimeoutMs' | 'tunnelIdleTimeoutMs' | 'maxTunnelsPerRoute'>;
  /** Every other upgrade (control's own WebSockets). */
  fallback: UpgradeHandler;
  /** Open browser relays per session hostname (they count as attached clients). */
  onRelays(hostname: string, open: number): void;
  logger: Logger;
}

/** The browser's WebSocket to a session: `/web/ws/<session id>`, nothing else (no query). */
const PATH = /^\/web\/ws\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const KEY = /^[A-Za-z0-9+/]{22}==$/;
const PROTOCOL = /^[A-Za-z0-9!#$%&'*+.^_`|~, -]{1,100}$/;
const MAX_ANSWER = 16 * 1024;

interface Grant {
  sni: string;
  caCert: string;
}

/**
 * xpra's HTML5 client over the API port: the edge holds the upgrade, asks control (with the
 * browser's cookie and Origin) whether this user owns the session, then opens TLS to the
 * session's upstream from the route table, verifying the session CA and the session's
 * hostname, and relays the WebSocket handshake and frames. Only the handshake's WebSocket
 * headers travel on: never the cookie. The relay ends with the route (a stopped session).
 */
export function sessionUpgrade(opts: SessionUpgradeOptions): UpgradeHandler {
  const log = opts.logger.child({ component: 'ws-session' });
  const open = new Map<string, Set<Duplex>>();
  opts.routes.onRemove((hostname) => {
    for (const s of open.get(hostname) ?? []) s.destroy();
  });
  const track = (hostname: string, sockets: Duplex[]) => {
    const set = open.get(hostname) ?? new Set<Duplex>();
    open.set(hostname, set);
    for (const s of sockets) set.add(s);
    opts.onRelays(hostname, set.size / 2);
    let done = false;
    const untrack = () => {
      if (done) return;
      done = true;
      for (const s of sockets) {
        set.delete(s);
        s.destroy();
      }
      if (set.size === 0) open.delete(hostname);
      opts.onRelays(hostname, set.size / 2);
    };
    for (const s of sockets) s.once('close', untrack);
  };

  return (req, socket, head) => {
    const m = PATH.exec(req.url ?? '');
    if (!m?.[1]) return opts.fallback(req, socket, head);
    const id = m[1];
    const key = req.headers['sec-websocket-key'];
    const protocol = req.headers['sec-websocket-protocol'];
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string' || !KEY.test(key) || (protocol !== undefined && !PROTOCOL.test(protocol))) {
      return refuse(socket, 400, 'Bad Request');
    }
    authorize(opts.socketPath, id, req)
      .then((grant) => {
        if (socket.destroyed) return;
        if (typeof grant === 'number') return refuse(socket, grant, grant === 401 ? 'Unauthorized' : grant === 404 ? 'Not Found' : 'Forbidden');
        const upstream = opts.routes.lookup(grant.sni);
        if (!upstream) return refuse(socket, 503, 'Service Unavailable');
        if ((open.get(grant.sni)?.size ?? 0) / 2 >= opts.limits.maxTunnelsPerRoute) return refuse(socket, 429, 'Too Many Requests');
        const up = tls.connect({ host: upstream.host, port: upstream.port, servername: grant.sni, ca: grant.caCert, minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
        const timer = setTimeout(() => up.destroy(new Error('upstream connect timeout')), opts.limits.upstreamConnectTimeoutMs);
        let relaying = false;
        up.on('error', (err) => {
          clearTimeout(timer);
          log.warn({ sessionId: id, err: err.message }, 'session relay failed');
          if (relaying) socket.destroy();
          else refuse(socket, 502, 'Bad Gateway');
        });
        socket.on('error', () => up.destroy());
        up.once('secureConnect', () => {
          clearTimeout(timer);
          relaying = true;
          let text = `GET / HTTP/1.1\r\nHost: ${grant.sni}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
          if (protocol) text += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
          up.write(`${text}\r\n`);
          if (head.length) up.write(head);
          up.setTimeout(opts.limits.tunnelIdleTimeoutMs, () => up.destroy());
          track(grant.sni, [socket, up]);
          socket.pipe(up);
          up.pipe(socket);
          log.info({ sessionId: id }, 'session relay open');
        });
      })
      .catch((err: Error) => {
        log.warn({ sessionId: id, err: err.message }, 'control did not answer a session upgrade');
        refuse(socket, 503, 'Service Unavailable');
      });
  };
}

function refuse(socket: Duplex, status: number, text: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

/** control's answer: the session's hostname and CA for its owner, else the refusal's status. */
function authorize(socketPath: string, id: string, req: http.IncomingMessage): Promise<Grant | number> {
  const headers: http.OutgoingHttpHeaders = {
    host: req.headers.host ?? '',
    'x-forwarded-for': normalizeAddress(req.socket.remoteAddress ?? ''),
    'x-forwarded-proto': 'https',
    'content-length': '0',
  };
  if (req.headers.cookie) headers.cookie = req.headers.cookie;
  if (req.headers.origin) headers.origin = req.headers.origin;
  return new Promise((resolve, reject) => {
    const r = http.request({ socketPath, method: 'POST', path: `/web/api/sessions/${id}/tunnel`, headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER) r.destroy(new Error('answer too large'));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(res.statusCode === 401 || res.statusCode === 404 ? res.statusCode : 403);
        try {
          const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          const b = body as { sni?: unknown; ca_cert?: unknown };
          if (typeof b.sni !== 'string' || typeof b.ca_cert !== 'string') return reject(new Error('malformed answer'));
          resolve({ sni: b.sni, caCert: b.ca_cert });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end();
  });
}
