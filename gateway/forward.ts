import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { SHARED_ERRORS, type SharedErrorCode } from '../lib/error-codes.js';
import type { Logger } from '../lib/log.js';
import type { UpgradeHandler } from './terminate.js';

export interface ForwarderOptions {
  /** control's `api.sock`. */
  socketPath: string;
  logger: Logger;
  /** Connections kept open to control (keep-alive). */
  maxSockets?: number;
}

/** Headers that belong to one hop (RFC 9110 §7.6.1) or that only the edge may set. */
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
  'forwarded',
]);
const REQUEST_ID = /^[A-Za-z0-9-]{8,64}$/;
const UNAVAILABLE_CODE: SharedErrorCode = 'SERVICE_UNAVAILABLE';
const UNAVAILABLE = JSON.stringify({ error: { code: UNAVAILABLE_CODE, message: 'the control plane is not answering; try again in a moment' } });
const idPrefix = randomBytes(4).toString('hex');
let idCounter = 0;

/**
 * The hop from the edge to control: each terminated API request goes to control's private Unix
 * socket with the client's address (`X-Forwarded-For`, one value: the edge's own view, never
 * the client's header) and a request id (`X-Request-Id`, the client's when well-formed), over
 * a small pool of kept-alive connections. WebSocket upgrades are piped raw after the head.
 */
export function createForwarder(opts: ForwarderOptions): { handle: http.RequestListener; upgrade: UpgradeHandler; close(): void } {
  const log = opts.logger.child({ component: 'forward' });
  // A free connection is closed by the edge before control's own keep-alive timeout can close
  // it under a request being written (control waits longer; see server/control.ts).
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 128, maxFreeSockets: 64, timeout: 30_000, scheduling: 'lifo' });

  const handle: http.RequestListener = (req, res) => {
    const headers = forwardHeaders(req);
    const send = (retry: boolean) => {
      const up = http.request({ socketPath: opts.socketPath, method: req.method, path: req.url, headers, agent }, (upRes) => {
        const out: http.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !DROP.has(k)) out[k] = v;
        res.writeHead(upRes.statusCode ?? 502, out);
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection control closed just as we reused it: safe to resend a bodiless GET/HEAD once.
        if (retry && up.reusedSocket && (req.method === 'GET' || req.method === 'HEAD') && err.code === 'ECONNRESET') return send(false);
        if (!res.headersSent) {
          log.warn({ err: err.message, code: err.code }, 'control did not answer');
          res.writeHead(SHARED_ERRORS[UNAVAILABLE_CODE], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(UNAVAILABLE), 'retry-after': '2' });
          res.end(UNAVAILABLE);
        } else {
          res.destroy();
        }
      });
      res.once('close', () => {
        if (!res.writableFinished) up.destroy();
      });
      if (req.method === 'GET' || req.method === 'HEAD') up.end();
      else req.pipe(up);
    };
    send(true);
  };

  const upgrade: UpgradeHandler = (req, socket, head) => {
    const headers = forwardHeaders(req);
    headers.connection = 'Upgrade';
    if (req.headers.upgrade) headers.upgrade = req.headers.upgrade;
    const up = net.connect(opts.socketPath);
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    up.once('connect', () => {
      let text = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(headers)) {
        for (const value of Array.isArray(v) ? v : [v]) if (value !== undefined) text += `${k}: ${String(value)}\r\n`;
      }
      up.write(`${text}\r\n`);
      if (head.length) up.write(head);
      (socket as Duplex).pipe(up);
      up.pipe(socket as Duplex);
    });
  };

  return { handle, upgrade, close: () => agent.destroy() };
}

function forwardHeaders(req: http.IncomingMessage): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !DROP.has(k)) headers[k] = v;
  const ip = req.socket.remoteAddress ?? '';
  headers['x-forwarded-for'] = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  headers['x-forwarded-proto'] = 'https';
  const id = req.headers['x-request-id'];
  headers['x-request-id'] = typeof id === 'string' && REQUEST_ID.test(id) ? id : `${idPrefix}-${(++idCounter).toString(36).padStart(6, '0')}`;
  return headers;
}
