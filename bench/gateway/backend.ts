/**
 * The TLS backend every target routes to (the stand-in for a session's xpra), in its own process.
 * Env: BENCH_CERT, BENCH_KEY (PEM files). Sends {type: 'ready', port} over IPC; answers {cmd: 'stats'}.
 *
 * After the handshake the client's first line picks what happens:
 *   "GET …" (wrk)  → a tiny HTTP/1.1 200 with Connection: close, then end
 *   "PING\n"       → "PONG\n", the connection stays open (latency probes, idle tunnels)
 *   "DOWN <n>\n"   → n bytes, then end
 *   "UP <n>\n"     → reads n bytes, then "OK\n" and end
 * Session resumption is off (no tickets, no cache), so every connection is a full handshake.
 */
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';

const HTTP_OK = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
const CHUNK = Buffer.alloc(256 * 1024, 0x61);
const MAX_LINE = 64;

const stats = { connections: 0, resumed: 0, open: 0 };

function sendBytes(s: tls.TLSSocket, total: number): void {
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void s.once('drain', pump);
    }
    s.end();
  };
  pump();
}

function receiveBytes(s: tls.TLSSocket, total: number, already: number): void {
  let got = already;
  const check = () => {
    if (got >= total) {
      s.off('data', onData);
      s.end('OK\n');
    }
  };
  const onData = (d: Buffer) => {
    got += d.length;
    check();
  };
  s.on('data', onData);
  check();
}

function onSecure(s: tls.TLSSocket): void {
  stats.connections++;
  stats.open++;
  if (s.isSessionReused()) stats.resumed++;
  s.on('error', () => s.destroy());
  s.once('close', () => stats.open--);
  let head = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(0x0a);
    if (nl < 0) {
      if (head.length > MAX_LINE) s.destroy();
      return;
    }
    const line = head.subarray(0, nl).toString('latin1').trim();
    const rest = head.length - nl - 1;
    if (line.startsWith('GET ')) {
      // wrk: answer once the request head is complete.
      if (head.indexOf('\r\n\r\n') < 0) return;
      s.off('data', onData);
      s.end(HTTP_OK);
      return;
    }
    s.off('data', onData);
    const [cmd, arg] = line.split(' ');
    const n = Number(arg);
    if (cmd === 'PING') {
      s.write('PONG\n');
      head = Buffer.alloc(0);
      s.on('data', onData);
    } else if (cmd === 'DOWN' && Number.isSafeInteger(n)) sendBytes(s, n);
    else if (cmd === 'UP' && Number.isSafeInteger(n)) receiveBytes(s, n, rest);
    else s.destroy();
  };
  s.on('data', onData);
}

function main(): void {
  const server = tls.createServer(
    {
      key: readFileSync(process.env.BENCH_KEY ?? ''),
      cert: readFileSync(process.env.BENCH_CERT ?? ''),
      // No tickets and no session-cache listeners: no resumption, every connection pays a full handshake.
      secureOptions: constants.SSL_OP_NO_TICKET,
      handshakeTimeout: 10_000,
    },
    onSecure,
  );
  server.on('tlsClientError', (_e, s) => s.destroy());
  server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
    process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port });
  });
  process.on('message', (m: unknown) => {
    if (typeof m === 'object' && m !== null && (m as { cmd?: unknown }).cmd === 'stats') process.send?.({ type: 'stats', ...stats });
  });
  process.on('disconnect', () => process.exit(0));
}

main();
