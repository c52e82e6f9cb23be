import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { CliError, EXIT } from './errors.js';
import { systemContext, systemTrustProblem } from './trust.js';

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

/** The certificates the server presented, its own first (Node links them by issuer). */
export function presentedChain(socket: tls.TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let c: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (c?.raw && chain.length < 10) {
    chain.push(new X509Certificate(c.raw));
    c = c.issuerCertificate && c.issuerCertificate !== c ? c.issuerCertificate : undefined;
  }
  return chain;
}

/**
 * Why the server (whose key for `chain[0]` the handshake proved) may not be trusted through
 * the pinned certificate, or undefined when it may: the pin is in the chain, each certificate
 * up to it is signed by the next, and the server's own certificate is current and names `host`.
 */
export function trustProblem(chain: X509Certificate[], pin: string, host: string): string | undefined {
  const want = formatFingerprint(pin);
  const at = chain.findIndex((c) => formatFingerprint(c.fingerprint256) === want);
  if (at < 0) return `none of the certificates it presented (${chain.map((c) => formatFingerprint(c.fingerprint256)).join(', ')}) is the pinned ${want}`;
  for (let i = 0; i < at; i++) {
    const [c, issuer] = [chain[i]!, chain[i + 1]!];
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) return `certificate ${i} is not signed by the next one`;
  }
  const leaf = chain[0]!;
  const now = Date.now();
  if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) return `its certificate is valid only from ${leaf.validFrom} to ${leaf.validTo}`;
  if (!(isIP(host) ? leaf.checkIP(host) : leaf.checkHost(host))) return `its certificate is not for ${host}`;
  return undefined;
}

/**
 * How a saved server is trusted: a pinned SHA-256 (tls.mode "self-signed": HackStream's own
 * CA), or the system trust store (a certificate from a public or company CA, tls.mode "acme"
 * or "files": its intermediates rotate at renewals, so nothing in the chain is pinned).
 */
export type Trust = { pin: string } | { system: true };

/**
 * A TLS connection checked before a single byte of the request (and its tokens) is written.
 * Pinned: the pin is the server's CA (HackStream's own CA, which the gateway sends after its
 * certificate) or the server's certificate itself; the presented chain must contain it and,
 * for a CA, lead from the server's certificate to it. System: the chain must lead to a CA of
 * the system store and name the host. With `trust` undefined the connection is only used to
 * read the chain (configure), never to send anything; `systemProblem` then says whether the
 * system store would vouch for it (undefined: it would).
 */
export function connectPinned(e: Endpoint, trust: Trust | string | undefined): Promise<{ socket: tls.TLSSocket; chain: X509Certificate[]; systemProblem: string | undefined }> {
  const pin = typeof trust === 'string' ? trust : trust && 'pin' in trust ? trust.pin : undefined;
  const system = typeof trust === 'object' && 'system' in trust;
  const t = dialTarget(e);
  return new Promise((resolve, reject) => {
    // SNI only for names (RFC 6066 forbids IP addresses there).
    const sni = isIP(t.servername) ? {} : { servername: t.servername };
    // Verified by hand below (a pin or the system store), so the handshake itself never fails on trust.
    const socket = tls.connect({ host: t.host, port: t.port, ...sni, secureContext: systemContext(), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error('timed out')));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      reject(new CliError(EXIT.UNREACHABLE, `cannot reach the server at ${e.url.host}${e.address ? ` (${e.address})` : ''}: ${err.code ?? err.message}; check the URL, your network and that the server runs`, { cause: err }));
    });
    socket.once('secureConnect', () => {
      const chain = presentedChain(socket);
      const systemProblem = systemTrustProblem(socket, t.servername);
      if (system && systemProblem !== undefined) {
        socket.destroy();
        reject(
          new CliError(
            EXIT.CA_MISMATCH,
            `${e.url.host} cannot be trusted: its certificate is not vouched for by this system's CA store (${systemProblem}). ` +
              'Someone may be intercepting the connection; if the server now uses its own CA run hackstream configure again.',
          ),
        );
        return;
      }
      const problem = pin === undefined ? undefined : trustProblem(chain, pin, t.servername);
      if (problem !== undefined) {
        socket.destroy();
        reject(
          new CliError(
            EXIT.CA_MISMATCH,
            `CA mismatch: ${e.url.host} cannot be trusted: ${problem}. ` +
              'Someone may be intercepting the connection; if the server was reinstalled run hackstream configure again.',
          ),
        );
        return;
      }
      socket.setTimeout(0);
      resolve({ socket, chain, systemProblem });
    });
  });
}

export interface HttpResult {
  status: number;
  json: unknown;
  text: string;
}

/** How long a request may go without a byte either way (starting a session can take a while). */
export const REQUEST_TIMEOUT_MS = 120_000;

/** One JSON request over a freshly checked connection (pinned or system-trusted); `timeoutMs` of silence ends it. */
export async function pinnedRequest(e: Endpoint, pin: Trust | string, method: string, path: string, body?: unknown, token?: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<HttpResult> {
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
    // On the socket itself: http's own `timeout` option is not armed on a socket handed over by createConnection.
    socket.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new CliError(EXIT.UNREACHABLE, `the server at ${e.url.host} dropped the request: ${err.code ?? err.message}`, { cause: err })));
    req.end(payload);
  });
}
