/**
 * NOT the product: a stripped SNI relay used only to test, in the same benchmark run, what the
 * suggestions in docs/benchmarks.md would buy. Peeks with the real parseClientHello, then relays in one
 * of three ways (BENCH_RELAY_MODE):
 *   pipe      what gateway/tunnel.ts does: stream.pipe both ways, default 16 KiB writable high-water marks
 *   pipe-timeout  pipe, plus an idle socket.setTimeout on both sockets (as Tunnel sets)
 *   pipe-heap     pipe, in a process carrying ~25 MB of long-lived heap (as the gateway's dependencies do)
 *   hwm       pipe, with 256 KiB high-water marks and TCP_NODELAY on both sockets
 *   onread    upstream → client read into one fixed 64 KiB buffer (net.connect's `onread`), reading paused
 *             until each write has completed; client → upstream as in `hwm`. No per-chunk allocation.
 * Env: BENCH_ROUTE ("hostname=port"). Sends {type: 'ready', port} over IPC.
 */
import net, { type AddressInfo } from 'node:net';
import { parseClientHello } from '../../gateway/client-hello.js';
import { HelloBuffer } from '../../gateway/hello-buffer.js';

const MODES = ['pipe', 'pipe-timeout', 'pipe-heap', 'hwm', 'onread'] as const;
type Mode = (typeof MODES)[number];
const MODE: Mode = MODES.find((m) => m === process.env.BENCH_RELAY_MODE) ?? 'hwm';
const HWM = MODE.startsWith('pipe') ? undefined : 256 * 1024;
/** pipe-heap: ~25 MB of long-lived objects, about what the real gateway keeps (koa, zod, forge, pino…). */
const ballast = MODE === 'pipe-heap' ? Array.from({ length: 250_000 }, (_, i) => ({ i, s: `ballast-${i}`, a: [i, i + 1] })) : [];

function relay(client: net.Socket, head: Buffer, port: number): void {
  const teardown = () => {
    client.destroy();
    upstream.destroy();
  };
  const onread =
    MODE === 'onread'
      ? {
          buffer: Buffer.allocUnsafe(64 * 1024),
          callback: (n: number, buf: Uint8Array): boolean => {
            // The buffer is reused: stop reading until this chunk has left (or been copied by) the kernel.
            const done = client.write(buf.subarray(0, n), () => upstream.resume());
            void done;
            return false;
          },
        }
      : undefined;
  const upstream = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...(HWM ? { writableHighWaterMark: HWM } : {}), ...(onread ? { onread } : {}) });
  upstream.setNoDelay(true);
  if (HWM) client.setNoDelay(true);
  if (MODE === 'pipe-timeout') for (const s of [client, upstream]) s.setTimeout(600_000, teardown);
  upstream.once('connect', () => {
    upstream.write(head);
    client.pipe(upstream);
    if (!onread) upstream.pipe(client);
    else upstream.once('end', () => client.end());
    client.resume();
  });
  for (const s of [client, upstream]) {
    s.on('error', teardown);
    s.on('close', teardown);
  }
}

function main(): void {
  const [, portText] = (process.env.BENCH_ROUTE ?? '').split('=');
  const port = Number(portText);
  const server = net.createServer({ allowHalfOpen: true, ...(HWM ? { highWaterMark: HWM } : {}) }, (socket) => {
    socket.on('error', () => socket.destroy());
    const buf = new HelloBuffer();
    const timer = setTimeout(() => socket.destroy(), 10_000);
    const onData = (chunk: Buffer) => {
      buf.append(chunk);
      const r = parseClientHello(buf.view(), 65_536);
      if (r.kind === 'incomplete') return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      if (r.kind !== 'ok') return void socket.destroy();
      relay(socket, buf.take(), port);
    };
    socket.on('data', onData);
  });
  server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
    process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port, ballast: ballast.length });
  });
  process.on('message', (m: unknown) => {
    if (typeof m === 'object' && m !== null && (m as { cmd?: unknown }).cmd === 'gc') {
      (globalThis as { gc?: () => void }).gc?.();
      process.send?.({ type: 'gc', memory: process.memoryUsage() });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

main();
