import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { readHandshake, refragment, splitChunks } from './client-hello.js';

export interface Shape {
  /** Re-frame the ClientHello into TLS records of this many payload bytes. */
  recordSize?: number;
  /** Send the (re-framed) ClientHello in TCP writes of this many bytes… */
  chunkSize?: number;
  /** …with this pause between writes, so each write leaves as its own segment. */
  gapMs?: number;
}

/**
 * A TCP connection for `tls.connect({socket})` that reshapes only the client's first flight
 * (the ClientHello), so a real TLS stack completes a real handshake through the gateway with
 * a hello split across many segments and/or many records. Record framing is outside the
 * TLS 1.3 transcript, so the server cannot tell the difference.
 */
export async function shapedSocket(port: number, shape: Shape): Promise<Duplex> {
  const tcp = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(tcp, 'connect');
  let first: Buffer | null = Buffer.alloc(0);
  const duplex = new Duplex({
    read() {
      tcp.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (first === null) {
        tcp.write(chunk, cb);
        return;
      }
      first = Buffer.concat([first, chunk]);
      const hs = readHandshake(first);
      if (!hs) return cb();
      const rest = first.subarray(hs.consumed);
      let hello = first.subarray(0, hs.consumed);
      first = null;
      if (shape.recordSize) hello = refragment(hello, shape.recordSize);
      void sendSlowly(tcp, Buffer.concat([hello, rest]), shape).then(() => cb(), cb);
    },
    final(cb) {
      tcp.end(cb);
    },
    destroy(err, cb) {
      tcp.destroy();
      cb(err);
    },
  });
  tcp.on('data', (d: Buffer) => {
    if (!duplex.push(d)) tcp.pause();
  });
  tcp.on('end', () => duplex.push(null));
  tcp.on('error', (e) => duplex.destroy(e));
  tcp.on('close', () => duplex.destroy());
  return duplex;
}

async function sendSlowly(tcp: net.Socket, data: Buffer, shape: Shape): Promise<void> {
  for (const part of splitChunks(data, shape.chunkSize ?? data.length)) {
    if (!tcp.write(part)) await once(tcp, 'drain');
    if (shape.gapMs) await new Promise((r) => setTimeout(r, shape.gapMs));
    else await new Promise((r) => setImmediate(r));
  }
}
