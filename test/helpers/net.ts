import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';

/**
 * Resolves when a socket has closed (or at once if it already has), whether or not it errored;
 * when the peer ends, our side ends too (raw sockets here are half-open capable).
 */
export function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  socket.on('error', () => {});
  socket.on('end', () => socket.end());
  socket.resume();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Reads everything a socket sends until it closes (ending our side when the peer ends); never rejects. */
export function collect(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('end', () => socket.end());
  socket.on('error', () => {});
  return new Promise((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks))));
}

export async function rawConnect(port: number, opts: { localAddress?: string } = {}): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...opts });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

export interface TlsConnectOpts {
  port: number;
  servername?: string;
  ca?: string;
  alpn?: string[];
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  socket?: net.Socket;
  localAddress?: string;
}

/** A verified TLS client connection through 127.0.0.1:port with the given SNI. Rejects on handshake failure. */
export function tlsConnect(o: TlsConnectOpts): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: o.port,
      ...(o.servername !== undefined ? { servername: o.servername } : {}),
      ...(o.ca ? { ca: o.ca } : { rejectUnauthorized: false }),
      ...(o.alpn ? { ALPNProtocols: o.alpn } : {}),
      ...(o.minVersion ? { minVersion: o.minVersion } : {}),
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
      ...(o.socket ? { socket: o.socket } : {}),
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      // Without SNI the API cert cannot match an IP literal; the chain is still verified.
      ...(o.servername ? {} : { checkServerIdentity: () => undefined }),
    });
    s.once('secureConnect', () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

export function portOf(server: net.Server): number {
  return (server.address() as AddressInfo).port;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns true or `ms` pass; returns the last result. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, every = 20): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(every);
  }
  return check();
}

/** A TCP port that was free a moment ago on 127.0.0.1 (for servers that need a fixed port). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = portOf(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
