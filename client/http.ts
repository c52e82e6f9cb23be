import http from 'node:http';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { CliError, EXIT } from './errors.js';

export interface Endpoint {
  /** https://host[:port] */
  url: URL;
  /** Dial this address instead of resolving the host (SNI and Host stay the URL's). */
  address?: string;
}

const TIMEOUT_MS = 15_000;

function dialTarget(e: Endpoint): { host: string; port: number; servername: string } {
  if (e.url.protocol !== 'https:') throw new CliError(EXIT.USAGE, `the API URL must start with https:// (got ${e.url.protocol}//)`);
  return { host: e.address ?? e.url.hostname, port: Number(e.url.port || 443), servername: e.url.hostname };
}

/** SHA-256 of a DER certificate as Node prints it (AA:BB:…, upper case). */
export function formatFingerprint(hex: string): string {
  return hex.replace(/[^0-9a-f]/gi, '').toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

/**
 * A TLS connection whose server certificate is checked against a pinned SHA-256, before a
 * single byte of the request (and its tokens) is written. With `pin` undefined the
 * connection is only used to read the certificate (configure), never to send anything.
 */
export function connectPinned(e: Endpoint, pin: string | undefined): Promise<{ socket: tls.TLSSocket; fingerprint: string; cert: tls.PeerCertificate }> {
  const t = dialTarget(e);
  return new Promise((resolve, reject) => {
    // SNI only for names (RFC 6066 forbids IP addresses there).
    const sni = isIP(t.servername) ? {} : { servername: t.servername };
    const socket = tls.connect({ host: t.host, port: t.port, ...sni, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error('timed out')));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      reject(new CliError(EXIT.UNREACHABLE, `cannot reach the server at ${e.url.host}${e.address ? ` (${e.address})` : ''}: ${err.code ?? err.message}; check the URL, your network and that the server runs`, { cause: err }));
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const fingerprint = formatFingerprint(cert.fingerprint256 ?? '');
      if (pin !== undefined && fingerprint !== formatFingerprint(pin)) {
        socket.destroy();
        reject(
          new CliError(
            EXIT.CA_MISMATCH,
            `CA mismatch: ${e.url.host} presented a certificate with SHA-256 ${fingerprint}, but ${formatFingerprint(pin)} is pinned. ` +
              'Someone may be intercepting the connection; if the server was reinstalled (or its certificate renewed) run hackstream configure again.',
          ),
        );
        return;
      }
      socket.setTimeout(0);
      resolve({ socket, fingerprint, cert });
    });
  });
}

export interface HttpResult {
  status: number;
  json: unknown;
  text: string;
}

/** One JSON request over a freshly pinned connection. */
export async function pinnedRequest(e: Endpoint, pin: string, method: string, path: string, body?: unknown, token?: string): Promise<HttpResult> {
  const { socket } = await connectPinned(e, pin);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        createConnection: () => socket,
        method,
        path,
        headers: {
          host: e.url.host,
          accept: 'application/json',
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        timeout: 120_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          socket.destroy();
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? (JSON.parse(text) as unknown) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new CliError(EXIT.UNREACHABLE, `the server at ${e.url.host} dropped the request: ${err.code ?? err.message}`, { cause: err })));
    req.end(payload);
  });
}
