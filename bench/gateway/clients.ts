/** The load the benchmark puts on each target (all over TLS to the same backend, verified, no resumption). */
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { promisify } from 'node:util';

export interface Endpoint {
  port: number;
  servername: string;
  /** PEM the backend's certificate chains to. */
  ca: string;
}

export interface Probe {
  /** connect() → secureConnect: TCP + the full TLS handshake with the backend (through the router). */
  handshakeMs: number;
  /** connect() → first application byte back (PING → PONG). */
  totalMs: number;
}

function connect(e: Endpoint): tls.TLSSocket {
  const s = tls.connect({ host: '127.0.0.1', port: e.port, servername: e.servername, ca: e.ca });
  s.setNoDelay(true);
  s.on('error', () => {});
  return s;
}

/** One fresh connection: handshake, PING/PONG. Resolves with its timings and the open socket. */
export function ping(e: Endpoint, timeoutMs = 10_000): Promise<Probe & { socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let t1 = 0;
    const s = connect(e);
    const timer = setTimeout(() => fail(new Error('ping timed out')), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      s.destroy();
      reject(err);
    };
    s.once('error', fail);
    s.once('close', () => fail(new Error('closed before PONG')));
    s.once('secureConnect', () => {
      t1 = performance.now();
      s.write('PING\n');
    });
    s.once('data', () => {
      clearTimeout(timer);
      s.removeAllListeners('close');
      s.off('error', fail);
      resolve({ handshakeMs: t1 - t0, totalMs: performance.now() - t0, socket: s });
    });
  });
}

/** n sequential connections; each is closed before the next starts. */
export async function latency(e: Endpoint, n: number): Promise<Probe[]> {
  const out: Probe[] = [];
  for (let i = 0; i < n; i++) {
    const p = await ping(e);
    p.socket.destroy();
    out.push({ handshakeMs: p.handshakeMs, totalMs: p.totalMs });
  }
  return out;
}

/** New connections per second from this (Node) client: `concurrency` loops of connect + PING + close. */
export async function nodeRate(e: Endpoint, concurrency: number, seconds: number): Promise<{ perSecond: number; errors: number }> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  const t0 = performance.now();
  const loop = async () => {
    while (performance.now() < end) {
      try {
        (await ping(e)).socket.destroy();
        done++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { perSecond: done / ((performance.now() - t0) / 1000), errors };
}

export interface WrkResult {
  requests: number;
  perSecond: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx responses. */
  errors: number;
  raw: string;
}

/**
 * wrk with `Connection: close`: every request is a new TCP connection and a full TLS handshake
 * (the backend issues no tickets). The Lua script makes wrk dial 127.0.0.1 while keeping the URL's
 * hostname for SNI and Host.
 */
export async function wrk(e: Endpoint, lua: string, connections: number, seconds: number): Promise<WrkResult> {
  const url = `https://${e.servername}:${e.port}/`;
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-H', 'Connection: close', '-s', lua, url];
  const { stdout } = await promisify(execFile)('wrk', args, { timeout: (seconds + 30) * 1000 });
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN);
  const perSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errors = (sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0) + non2xx;
  if (!Number.isFinite(perSecond)) throw new Error(`cannot read wrk output:\n${stdout}`);
  return { requests, perSecond, errors, raw: stdout };
}

const CHUNK = Buffer.alloc(256 * 1024, 0x62);

/** Bytes from the backend to the client over one established connection: MB/s from request to last byte. */
export function bulkDown(e: Endpoint, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(e);
    let got = 0;
    let t0 = 0;
    s.once('error', reject);
    s.once('secureConnect', () => {
      t0 = performance.now();
      s.write(`DOWN ${bytes}\n`);
    });
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got < bytes) return;
      const secs = (performance.now() - t0) / 1000;
      s.destroy();
      resolve(bytes / 1e6 / secs);
    });
    s.once('close', () => got < bytes && reject(new Error(`bulk down: closed after ${got} bytes`)));
  });
}

/** Bytes from the client to the backend: MB/s from the first byte sent to the backend's "OK". */
export function bulkUp(e: Endpoint, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(e);
    let t0 = 0;
    let ok = false;
    s.once('error', reject);
    s.once('secureConnect', () => {
      t0 = performance.now();
      let left = bytes;
      s.write(`UP ${bytes}\n`);
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, CHUNK.length);
          left -= n;
          if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void s.once('drain', pump);
        }
      };
      pump();
    });
    s.on('data', (d: Buffer) => {
      if (!d.toString('latin1').includes('OK')) return;
      ok = true;
      const secs = (performance.now() - t0) / 1000;
      s.destroy();
      resolve(bytes / 1e6 / secs);
    });
    s.once('close', () => !ok && reject(new Error('bulk up: closed before OK')));
  });
}

/** Opens n connections (PING/PONG done, so each is a live end-to-end tunnel) and keeps them open. */
export async function openIdle(e: Endpoint, n: number, concurrency = 50): Promise<tls.TLSSocket[]> {
  const sockets: tls.TLSSocket[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      sockets.push((await ping(e, 30_000)).socket);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return sockets;
}
