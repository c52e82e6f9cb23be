/**
 * The tunnel relay on its own: a Gateway (edge only, no control plane) in front of a plain TCP backend.
 * After the ClientHello the gateway is a transparent byte pipe, so the client sends a real captured
 * ClientHello and then raw bytes; the backend checks it got the hello first, byte for byte.
 * What these guard: the reused read buffers (no byte of one tunnel may leak into another or be
 * overwritten before it is sent), half-close each way, backpressure both ways with bounded buffering,
 * and the coarse sweep behind the idle and upstream-connect timeouts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Gateway } from '../../gateway/gateway.js';
import { freeReadBuffers } from '../../gateway/relay-buffers.js';
import { gatewaySchema } from '../../lib/limits.js';
import { silentLogger } from '../../lib/log.js';
import { MemoryRouteTable } from '../../lib/route-table.js';
import type { KeyPair } from '../../lib/tls.js';
import { captureClientHello } from '../helpers/client-hello.js';
import { rawConnect, waitFor } from '../helpers/net.js';

const MiB = 1024 * 1024;
const DOMAIN = 'relay.test';
const tmp = mkdtempSync(join(tmpdir(), 'hs-relay-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A self-signed API certificate made at test time (the API path is not used here, the gateway needs one). */
function apiCert(): KeyPair {
  const key = join(tmp, 'api.key');
  const cert = join(tmp, 'api.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=api.${DOMAIN}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { keyPem: readFileSync(key, 'utf8'), certPem: readFileSync(cert, 'utf8') };
}

interface Edge {
  gw: Gateway;
  port: number;
  routes: MemoryRouteTable;
  close(): Promise<void>;
}

async function startEdge(limits: Record<string, number> = {}): Promise<Edge> {
  const pair = apiCert();
  const routes = new MemoryRouteTable();
  const gw = new Gateway({
    publicHost: `api.${DOMAIN}`,
    limits: gatewaySchema.parse(limits),
    routes,
    apiCert: { current: () => pair, onChange: () => () => {}, close: async () => {} },
    app: (_req, res) => res.end('ok'),
    logger: silentLogger(),
  });
  const { port } = await gw.listen('127.0.0.1', 0);
  return { gw, port, routes, close: () => gw.close(200) };
}

/** A plain TCP backend; `onSocket` gets each connection once its ClientHello prefix has been checked. */
async function startBackend(hello: Buffer, onSocket: (s: net.Socket, rest: Buffer) => void): Promise<{ port: number; bad: () => number; close(): void }> {
  let bad = 0;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      if (head.length < hello.length) return;
      s.off('data', onData);
      if (!head.subarray(0, hello.length).equals(hello)) {
        bad++;
        s.destroy();
        return;
      }
      s.pause();
      onSocket(s, head.subarray(hello.length));
    };
    s.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, bad: () => bad, close: () => server.close() };
}

/** Random bytes in random-sized writes (1 B to 256 KiB), honouring backpressure; resolves with their SHA-256. */
async function sendRandom(s: net.Socket, total: number, seed: Buffer, prefix = Buffer.alloc(0)): Promise<string> {
  const hash = createHash('sha256').update(prefix);
  if (prefix.length) s.write(prefix);
  for (let sent = prefix.length, i = 0; sent < total; i++) {
    const r = seed.readUInt32LE((i * 4) % (seed.length - 4));
    const len = Math.min(total - sent, r % 3 === 0 ? 1 + (r % 1500) : 1 + (r % (256 * 1024)));
    const off = r % (seed.length - len);
    const chunk = seed.subarray(off, off + len);
    hash.update(chunk);
    sent += len;
    if (!s.write(chunk)) await once(s, 'drain');
  }
  return hash.digest('hex');
}

/** Hashes what a socket receives until it ends; now and then stops reading for a moment (a jittery reader). */
function receiveAll(s: net.Socket, initial: Buffer = Buffer.alloc(0)): Promise<{ bytes: number; sha: string }> {
  const hash = createHash('sha256').update(initial);
  let bytes = initial.length;
  let reads = 0;
  s.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
    if (++reads % 7 === 0) {
      s.pause();
      setImmediate(() => s.resume());
    }
  });
  s.resume();
  return new Promise((resolve) => s.once('end', () => resolve({ bytes, sha: hash.digest('hex') })));
}

describe('gateway relay: bytes, half-close, backpressure', () => {
  let edge: Edge;
  let hello: Buffer;
  const seed = randomBytes(4 * MiB);
  before(async () => {
    edge = await startEdge({ maxTunnelsPerRoute: 1000 });
    hello = await captureClientHello({ servername: `bulk.${DOMAIN}` });
  });
  after(async () => edge.close());

  it('carries 64 MiB each way with random chunking; SHA-256 matches on both ends; counters are exact', async () => {
    const SIZE = 64 * MiB;
    const done = { up: Promise.resolve({ bytes: 0, sha: '' }), down: Promise.resolve('') };
    const backend = await startBackend(hello, (s, rest) => {
      done.up = receiveAll(s, rest);
      done.down = sendRandom(s, SIZE, seed.subarray(MiB)).then(async (sha) => {
        await done.up;
        s.end();
        return sha;
      });
    });
    try {
      await edge.routes.add(`bulk.${DOMAIN}`, { host: '127.0.0.1', port: backend.port });
      const before = edge.gw.metrics();
      const c = await rawConnect(edge.port);
      c.write(hello);
      const down = receiveAll(c);
      const upSha = await sendRandom(c, SIZE, seed);
      c.end();
      const [gotDown, gotUp] = await Promise.all([down, waitFor(async () => (await done.up).bytes === SIZE, 60_000).then(() => done.up)]);
      const sentDown = await done.down;
      assert.equal(backend.bad(), 0, 'the backend got the ClientHello first, intact');
      assert.equal(gotUp.bytes, SIZE);
      assert.equal(gotUp.sha, upSha, 'client → backend intact');
      assert.equal(gotDown.bytes, SIZE);
      assert.equal(gotDown.sha, sentDown, 'backend → client intact');
      assert.ok(await waitFor(() => edge.gw.tunnelCount(`bulk.${DOMAIN}`) === 0, 5000), 'the tunnel closed after both halves ended');
      const m = edge.gw.metrics();
      assert.equal(m.bytesUpstream - before.bytesUpstream, hello.length + SIZE);
      assert.equal(m.bytesDownstream - before.bytesDownstream, SIZE);
      assert.ok(freeReadBuffers() >= 1, 'the burst buffer went back to the pool');
    } finally {
      backend.close();
    }
  });

  it('keeps 32 concurrent tunnels apart: each gets exactly its own bytes both ways', async () => {
    const N = 32;
    const SIZE = 3 * MiB;
    const name = `many.${DOMAIN}`;
    const manyHello = await captureClientHello({ servername: name });
    const results = new Map<string, { up: Promise<{ bytes: number; sha: string }>; down: Promise<string> }>();
    const backend = await startBackend(manyHello, (s, rest) => {
      // Each client announces its id in its first 8 bytes; the backend answers with its own stream.
      const up = receiveAll(s, rest);
      const id = new Promise<string>((resolve) => {
        const check = () => (rest.length >= 8 ? resolve(rest.subarray(0, 8).toString()) : s.once('data', (d: Buffer) => ((rest = Buffer.concat([rest, d])), check())));
        check();
      });
      void id.then((k) => {
        const down = sendRandom(s, SIZE, seed.subarray((Number.parseInt(k, 16) % 64) * 4096)).then(async (sha) => {
          await up;
          s.end();
          return sha;
        });
        results.set(k, { up, down });
      });
    });
    try {
      await edge.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const clients = await Promise.all(
        Array.from({ length: N }, async (_, i) => {
          const id = i.toString(16).padStart(8, '0');
          const c = await rawConnect(edge.port);
          c.write(manyHello);
          const down = receiveAll(c);
          const upSha = await sendRandom(c, SIZE, seed.subarray(i * 8192), Buffer.from(id));
          c.end();
          return { id, down: await down, upSha };
        }),
      );
      for (const { id, down, upSha } of clients) {
        const r = results.get(id);
        assert.ok(r, `backend saw client ${id}`);
        const up = await r.up;
        assert.equal(up.bytes, SIZE, `client ${id} up bytes`);
        assert.equal(up.sha, upSha, `the backend got exactly client ${id}'s bytes`);
        assert.equal(down.bytes, SIZE, `client ${id} down bytes`);
        assert.equal(down.sha, await r.down, `client ${id} got its own downstream bytes`);
      }
      assert.equal(backend.bad(), 0);
    } finally {
      backend.close();
    }
  });

  it('passes a half-close through when the client ends first: the backend still answers, then ends', async () => {
    const name = `half1.${DOMAIN}`;
    const h = await captureClientHello({ servername: name });
    const backend = await startBackend(h, (s, rest) => {
      const got: Buffer[] = [rest];
      s.on('data', (d: Buffer) => got.push(d));
      s.once('end', () => {
        // Our read side is done; the write side is still open through the gateway.
        s.write('reply to ');
        setImmediate(() => s.end(Buffer.concat(got)));
      });
      s.resume();
    });
    try {
      await edge.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const c = await rawConnect(edge.port);
      c.write(h);
      c.end('request');
      const reply = await receiveAll(c).then(() => 'ended');
      assert.equal(reply, 'ended');
      const c2 = await rawConnect(edge.port);
      const chunks: Buffer[] = [];
      c2.on('data', (d: Buffer) => chunks.push(d));
      c2.write(h);
      c2.end('second');
      await once(c2, 'end');
      assert.equal(Buffer.concat(chunks).toString(), 'reply to second');
      assert.ok(await waitFor(() => edge.gw.tunnelCount(name) === 0, 5000));
    } finally {
      backend.close();
    }
  });

  it('passes a half-close through when the backend ends first: the client can still send', async () => {
    const name = `half2.${DOMAIN}`;
    const h = await captureClientHello({ servername: name });
    let heard = '';
    const backend = await startBackend(h, (s, rest) => {
      heard = rest.toString();
      s.end('bye');
      s.on('data', (d: Buffer) => (heard += d.toString()));
      s.resume();
    });
    try {
      await edge.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const c = await rawConnect(edge.port);
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      c.write(h);
      await once(c, 'end');
      assert.equal(Buffer.concat(chunks).toString(), 'bye');
      assert.equal(edge.gw.tunnelCount(name), 1, 'the tunnel stays open for the other direction');
      c.end('still talking');
      assert.ok(await waitFor(() => heard === 'still talking', 5000), `backend heard "${heard}"`);
      assert.ok(await waitFor(() => edge.gw.tunnelCount(name) === 0, 5000));
    } finally {
      backend.close();
    }
  });

  it('a reader that stops makes the other side block (both directions), with bounded buffering, then resumes intact', async () => {
    const name = `slow.${DOMAIN}`;
    const h = await captureClientHello({ servername: name });
    let backendSocket: net.Socket | undefined;
    const backend = await startBackend(h, (s) => {
      backendSocket = s; // paused: it does not read
    });
    const blockedWriter = async (s: net.Socket) => {
      const block = seed.subarray(0, 64 * 1024);
      let written = 0;
      // Write until the socket refuses, then wait until no 'drain' comes while the reader stays paused.
      for (;;) {
        written += block.length;
        if (!s.write(block)) {
          const drained = await Promise.race([once(s, 'drain').then(() => true), waitFor(() => false, 1500).then(() => false)]);
          if (!drained) return written;
        }
        if (written > 256 * MiB) return written;
      }
    };
    try {
      await edge.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const c = await rawConnect(edge.port);
      c.write(h);
      assert.ok(await waitFor(() => backendSocket !== undefined, 5000));
      const bs = backendSocket as net.Socket;
      c.pause();
      // Downstream: the client does not read. The backend must end up blocked after a bounded amount.
      const down = await blockedWriter(bs);
      assert.ok(down < 64 * MiB, `backend wrote ${down} bytes into a stalled tunnel`);
      // Upstream: the backend does not read either.
      const up = await blockedWriter(c);
      assert.ok(up < 64 * MiB, `client wrote ${up} bytes into a stalled tunnel`);
      // Both resume: every byte written so far arrives.
      const gotDown = receiveAll(c);
      const gotUp = receiveAll(bs);
      bs.end();
      c.end();
      assert.equal((await gotDown).bytes, down);
      assert.equal((await gotUp).bytes, up);
    } finally {
      backend.close();
    }
  });
});

describe('gateway relay: timeouts from the coarse sweep', () => {
  it('closes a tunnel idle for tunnelIdleTimeoutMs, and not one that keeps moving bytes', async () => {
    const IDLE = 800;
    const edge = await startEdge({ tunnelIdleTimeoutMs: IDLE });
    const name = `idle.${DOMAIN}`;
    const h = await captureClientHello({ servername: name });
    const backend = await startBackend(h, (s) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.resume();
    });
    try {
      await edge.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const busy = await rawConnect(edge.port);
      const idle = await rawConnect(edge.port);
      for (const s of [busy, idle]) s.write(h);
      assert.ok(await waitFor(() => edge.gw.tunnelCount(name) === 2, 5000));
      let closedAt = 0;
      // The gateway closes its side; this half-open-capable socket sees the end of the stream.
      idle.once('end', () => (closedAt = Date.now()));
      idle.resume();
      idle.write('last words');
      const lastByte = Date.now();
      // The busy one sends a byte every IDLE/4 for 3 idle periods.
      busy.resume();
      for (const until = Date.now() + 3 * IDLE; Date.now() < until; ) {
        busy.write('.');
        await waitFor(() => false, IDLE / 4);
      }
      assert.ok(closedAt > 0, 'the idle tunnel was closed');
      const after = closedAt - lastByte;
      assert.ok(after >= IDLE - 50 && after <= IDLE + 1000, `closed ${after} ms after its last byte (idle timeout ${IDLE} ms)`);
      assert.equal(busy.destroyed, false, 'the busy tunnel is still open');
      assert.equal(edge.gw.tunnelCount(name), 1);
      busy.destroy();
    } finally {
      backend.close();
      await edge.close();
    }
  });

  it('gives up on an upstream that never accepts after upstreamConnectTimeoutMs', async (t) => {
    const CONNECT = 700;
    // A listener that never accepts (backlog 0): once its queue holds one connection, SYNs are dropped.
    const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)'], { stdio: ['ignore', 'pipe', 'ignore'] });
    t.after(() => py.kill());
    const [line] = (await once(py.stdout, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    const fillers: net.Socket[] = [];
    // Fill the accept queue until a connect hangs.
    for (let i = 0; i < 8; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      fillers.push(s);
      const ok = await Promise.race([once(s, 'connect').then(() => true), waitFor(() => false, 300).then(() => false)]);
      if (!ok) break;
    }
    t.after(() => fillers.forEach((s) => s.destroy()));
    const edge = await startEdge({ upstreamConnectTimeoutMs: CONNECT });
    const name = `blackhole.${DOMAIN}`;
    const h = await captureClientHello({ servername: name });
    try {
      await edge.routes.add(name, { host: '127.0.0.1', port });
      const c = await rawConnect(edge.port);
      const t0 = Date.now();
      c.write(h);
      c.resume();
      await once(c, 'end');
      const ms = Date.now() - t0;
      assert.ok(ms >= CONNECT - 50 && ms <= CONNECT + 1000, `client closed after ${ms} ms (connect timeout ${CONNECT} ms)`);
      assert.equal(edge.gw.metrics().rejected.upstream_unreachable, 1);
      assert.equal(edge.gw.metrics().routed, 0);
      assert.equal(edge.gw.tunnelCount(name), 0);
    } finally {
      await edge.close();
    }
  });
});
