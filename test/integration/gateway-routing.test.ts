import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { captureClientHello } from '../helpers/client-hello.js';
import { httpsRequest, PUBLIC_HOST, SESSION_DOMAIN, startGateway, startTlsBackend, type TestGateway, type TlsBackend } from '../helpers/gateway.js';
import { closed, collect, rawConnect, sleep, tlsConnect, waitFor } from '../helpers/net.js';

const SESSION = `s1.${SESSION_DOMAIN}`;

describe('gateway routing (real sockets, real TLS)', () => {
  let gw: TestGateway;
  let backend: TlsBackend;
  const wss = new WebSocketServer({ noServer: true });

  before(async () => {
    gw = await startGateway(
      {},
      {
        onUpgrade: (req, socket, head) => {
          if (req.url !== '/echo') return socket.destroy();
          wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
        },
      },
    );
    backend = await startTlsBackend(await gw.app.certs.issueSessionCert(SESSION));
    await gw.app.routes.add(SESSION, { host: '127.0.0.1', port: backend.port });
  });
  after(async () => {
    wss.close();
    await backend.close();
    await gw.close();
  });

  it('pipes a session hostname to its backend without decrypting: the client verifies the backend’s own cert', async () => {
    const routedBefore = gw.app.gateway.metrics().routed;
    const s = await tlsConnect({ port: gw.port, servername: SESSION, ca: gw.ca });
    const peer = s.getPeerCertificate();
    assert.equal(peer.subjectaltname, `DNS:${SESSION}`, 'the session cert, not the API cert');
    s.write('ping');
    const [echo] = (await once(s, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'ping');
    assert.equal(backend.servernames.at(-1), SESSION, 'the backend saw the original SNI');
    s.destroy();
    assert.equal(gw.app.gateway.metrics().routed, routedBefore + 1);
  });

  it('routes SNI case-insensitively and with a trailing dot', async () => {
    const seen = backend.servernames.length;
    for (const name of [SESSION.toUpperCase(), `${SESSION}.`, `S1.${SESSION_DOMAIN.toUpperCase()}.`]) {
      const s = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca });
      s.write('x');
      await once(s, 'data');
      s.destroy();
    }
    assert.equal(backend.servernames.length, seen + 3, 'all three reached the backend');
  });

  it('terminates TLS for the API host and serves /health', async () => {
    const r = await httpsRequest(gw.port, gw.ca, '/health');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
  });

  it('serves the API to a client that sends no SNI', async () => {
    const s = await tlsConnect({ port: gw.port, ca: gw.ca });
    assert.equal(s.getPeerCertificate().subjectaltname?.includes(`DNS:${PUBLIC_HOST}`), true);
    s.write(`GET /health HTTP/1.1\r\nHost: ${PUBLIC_HOST}\r\nConnection: close\r\n\r\n`);
    const body = (await collect(s)).toString();
    assert.match(body, /^HTTP\/1\.1 200 /);
    assert.match(body, /"status":"ok"/);
  });

  it('keeps HTTP/1.1 connections alive across requests', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await httpsRequest(gw.port, gw.ca, '/health', { agent });
      const b = await httpsRequest(gw.port, gw.ca, '/health', { agent });
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.equal(b.reusedSocket, true, 'second request reused the TLS connection');
    } finally {
      agent.destroy();
    }
  });

  it('passes WebSocket upgrades through the terminated path', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${gw.port}/echo`, {
      ca: gw.ca,
      headers: { host: PUBLIC_HOST },
      // ws takes tls options through; the SNI must name the API host.
      ...({ servername: PUBLIC_HOST } as object),
    });
    await once(ws, 'open');
    ws.send('hello over wss');
    const [msg] = (await once(ws, 'message')) as [Buffer];
    assert.equal(msg.toString(), 'hello over wss');
    ws.close();
  });

  it('answers 421 when the Host header names another server than the SNI', async () => {
    const r = await httpsRequest(gw.port, gw.ca, '/health', { servername: PUBLIC_HOST, host: 'evil.example' });
    assert.equal(r.status, 421);
    assert.equal(JSON.parse(r.body).error.code, 'MISDIRECTED_REQUEST');
  });

  it('answers JSON 404 with a stable code for an unknown API path', async () => {
    const r = await httpsRequest(gw.port, gw.ca, '/nope');
    assert.equal(r.status, 404);
    assert.equal(JSON.parse(r.body).error.code, 'NOT_FOUND');
  });

  it('closes an unknown SNI with the unrecognized_name alert and forwards nothing', async () => {
    const seen = backend.servernames.length;
    const before = gw.app.gateway.metrics().rejected.unknown_sni;
    await assert.rejects(tlsConnect({ port: gw.port, servername: `nobody.${SESSION_DOMAIN}`, ca: gw.ca }), (e: NodeJS.ErrnoException) => {
      assert.match(e.code ?? e.message, /UNRECOGNIZED_NAME/i);
      return true;
    });
    assert.equal(gw.app.gateway.metrics().rejected.unknown_sni, before + 1);
    assert.equal(backend.servernames.length, seen);
  });

  it('refuses TLS 1.1 on the API host', async () => {
    await assert.rejects(tlsConnect({ port: gw.port, servername: PUBLIC_HOST, ca: gw.ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }));
    // Still healthy afterwards.
    assert.equal((await httpsRequest(gw.port, gw.ca, '/health')).status, 200);
  });

  it('answers plain HTTP with a short 400 telling the user to use https, then closes', async () => {
    const s = await rawConnect(gw.port);
    s.write(`GET / HTTP/1.1\r\nHost: ${PUBLIC_HOST}\r\n\r\n`);
    const reply = (await collect(s)).toString();
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(reply, /https:\/\//);
    assert.ok(reply.length < 512);
  });

  it('withdrawing a route stops new connections and closes the tunnels it carried', async () => {
    const name = `s2.${SESSION_DOMAIN}`;
    const b2 = await startTlsBackend(await gw.app.certs.issueSessionCert(name));
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: b2.port });
      const s = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca });
      await gw.app.routes.remove(name);
      await closed(s);
      await assert.rejects(tlsConnect({ port: gw.port, servername: name, ca: gw.ca }));
    } finally {
      await b2.close();
    }
  });

  it('reports an unreachable upstream and closes the client', async () => {
    const name = `dead.${SESSION_DOMAIN}`;
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    await gw.app.routes.add(name, { host: '127.0.0.1', port });
    const before = gw.app.gateway.metrics().rejected.upstream_unreachable;
    await assert.rejects(tlsConnect({ port: gw.port, servername: name, ca: gw.ca }));
    assert.equal(gw.app.gateway.metrics().rejected.upstream_unreachable, before + 1);
    await gw.app.routes.remove(name);
  });
});

describe('gateway tunnels: bulk data, half-close, backpressure', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(async () => gw.close());

  it('carries 100 MB each way through a TLS tunnel with matching SHA-256', async () => {
    const name = `bulk.${SESSION_DOMAIN}`;
    const SIZE = 100 * 1024 * 1024;
    const chunk = () => randomBytes(256 * 1024);
    const sent = { up: createHash('sha256'), down: createHash('sha256') };
    const got = { up: createHash('sha256'), down: createHash('sha256') };
    let upBytes = 0;
    let downBytes = 0;
    const pump = async (s: tls.TLSSocket, hash: ReturnType<typeof createHash>) => {
      for (let n = 0; n < SIZE; ) {
        const c = chunk();
        hash.update(c);
        n += c.length;
        if (!s.write(c)) await once(s, 'drain');
      }
    };
    let serverSide!: Promise<void>;
    const backend = await startTlsBackend(await gw.app.certs.issueSessionCert(name), (s) => {
      s.on('data', (d: Buffer) => {
        got.up.update(d);
        upBytes += d.length;
      });
      serverSide = pump(s, sent.down);
    });
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const c = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca });
      c.on('data', (d: Buffer) => {
        got.down.update(d);
        downBytes += d.length;
      });
      await Promise.all([pump(c, sent.up), waitFor(() => serverSide !== undefined, 5000)]);
      await serverSide;
      assert.ok(await waitFor(() => upBytes === SIZE && downBytes === SIZE, 60_000, 50), `up ${upBytes} down ${downBytes}`);
      assert.equal(got.up.digest('hex'), sent.up.digest('hex'), 'client → backend intact');
      assert.equal(got.down.digest('hex'), sent.down.digest('hex'), 'backend → client intact');
      const m = gw.app.gateway.metrics();
      assert.ok(m.bytesUpstream >= SIZE && m.bytesDownstream >= SIZE, 'byte counters include the live tunnel');
      c.destroy();
    } finally {
      await backend.close();
    }
  });

  it('passes a half-close through: the client ends, the backend still answers', async () => {
    const name = `half.${SESSION_DOMAIN}`;
    const hello = await captureClientHello({ servername: name });
    const backend = net.createServer({ allowHalfOpen: true }, (s) => {
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      s.on('end', () => {
        const all = Buffer.concat(got);
        // The backend got the ClientHello first, byte for byte, then the payload.
        s.end(all.subarray(0, hello.length).equals(hello) ? `ok:${all.subarray(hello.length).toString()}` : 'bad-hello');
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: (backend.address() as net.AddressInfo).port });
      const s = await rawConnect(gw.port);
      const reply = collect(s);
      s.write(hello);
      s.end('after-hello');
      assert.equal((await reply).toString(), 'ok:after-hello');
    } finally {
      backend.close();
    }
  });

  it('a slow reader does not make the gateway buffer without bound (backpressure reaches the backend)', async () => {
    const name = `slow.${SESSION_DOMAIN}`;
    let written = 0;
    let blocked = false;
    const backend = await startTlsBackend(await gw.app.certs.issueSessionCert(name), (s) => {
      const block = Buffer.alloc(64 * 1024, 7);
      const go = () => {
        while (written < 512 * 1024 * 1024) {
          written += block.length;
          if (!s.write(block)) {
            blocked = true;
            s.once('drain', go);
            return;
          }
        }
      };
      go();
    });
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const c = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca });
      c.pause(); // never reads
      await sleep(1500);
      const plateau = written;
      await sleep(1500);
      assert.ok(blocked, 'the backend saw backpressure');
      assert.equal(written, plateau, 'the backend could not write more while the client did not read');
      // Kernel socket buffers on both legs plus the streams' high-water marks: a few MB at most.
      assert.ok(written < 32 * 1024 * 1024, `backend wrote ${written} bytes into a stalled tunnel`);
      c.destroy();
    } finally {
      await backend.close();
    }
  });
});
