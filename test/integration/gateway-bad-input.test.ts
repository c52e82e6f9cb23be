import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { bigAlpnList, buildClientHello, captureClientHello, ext } from '../helpers/client-hello.js';
import { httpsRequest, SESSION_DOMAIN, startGateway, startTlsBackend, type TestGateway, type TlsBackend } from '../helpers/gateway.js';
import { collect, rawConnect, sleep, tlsConnect } from '../helpers/net.js';
import { shapedSocket, type Shape } from '../helpers/shaped-socket.js';

const SESSION = `odd.${SESSION_DOMAIN}`;
const DEADLINE_MS = 1500;

/** A full, verified TLS handshake and an echo through the gateway, over a reshaped first flight. */
async function echoThrough(gw: TestGateway, shape: Shape, extra: tls.ConnectionOptions = {}): Promise<string> {
  const socket = await shapedSocket(gw.port, shape);
  const s = tls.connect({ socket, servername: SESSION, ca: gw.ca, ...extra });
  s.on('error', () => {});
  await once(s, 'secureConnect');
  s.write('through');
  const [d] = (await once(s, 'data')) as [Buffer];
  s.destroy();
  return d.toString();
}

/** Milliseconds until the gateway closes a raw connection after `send` ran. */
async function timeToClose(gw: TestGateway, send: (s: import('node:net').Socket) => void | Promise<void>): Promise<{ ms: number; reply: Buffer }> {
  const s = await rawConnect(gw.port);
  const reply = collect(s);
  await send(s);
  const t0 = Date.now();
  const bytes = await reply;
  return { ms: Date.now() - t0, reply: bytes };
}

describe('gateway under malformed and hostile input', () => {
  let gw: TestGateway;
  let backend: TlsBackend;

  before(async () => {
    gw = await startGateway({ gateway: { clientHelloTimeoutMs: DEADLINE_MS } });
    backend = await startTlsBackend(await gw.app.certs.issueSessionCert(SESSION));
    await gw.app.routes.add(SESSION, { host: '127.0.0.1', port: backend.port });
  });
  after(async () => {
    await backend.close();
    await gw.close();
  });

  const shapes: Array<[string, Shape]> = [
    ['a ClientHello sent one byte per TCP segment', { chunkSize: 1 }],
    ['a ClientHello split into 1-byte TLS records', { recordSize: 1 }],
    ['a ClientHello in 64-byte records sent 7 bytes at a time', { recordSize: 64, chunkSize: 7 }],
    ['a ClientHello with a 5 ms pause every 100 bytes', { chunkSize: 100, gapMs: 5 }],
  ];
  for (const [desc, shape] of shapes) {
    it(`routes ${desc}`, async () => {
      assert.equal(await echoThrough(gw, shape), 'through');
    });
  }

  it('routes a 16 KiB+ ClientHello that OpenSSL splits across two records, also byte by byte', async () => {
    const alpn = bigAlpnList(20_000);
    const hello = await captureClientHello({ servername: SESSION, ALPNProtocols: alpn });
    assert.ok(hello.length > 16_384 + 5, `hello is ${hello.length} bytes`);
    assert.equal(await echoThrough(gw, {}, { ALPNProtocols: alpn }), 'through');
    // 16,000+ one-byte segments: on a busy host the shared gateway's 1.5 s ClientHello deadline is too
    // tight for that (it would cut the client, as it should), so this one runs with the default deadline.
    const patient = await startGateway();
    const patientBackend = await startTlsBackend(await patient.app.certs.issueSessionCert(SESSION));
    try {
      await patient.app.routes.add(SESSION, { host: '127.0.0.1', port: patientBackend.port });
      assert.equal(await echoThrough(patient, { chunkSize: 1 }, { ALPNProtocols: alpn }), 'through');
    } finally {
      await patientBackend.close();
      await patient.close();
    }
  });

  it('closes a ClientHello larger than maxClientHelloBytes at once', async () => {
    const huge = buildClientHello({ extensions: [ext.serverName(SESSION), ext.padding(60_000), ext.padding(10_000)] });
    const before = gw.app.gateway.metrics().rejected;
    const { ms } = await timeToClose(gw, (s) => void s.write(huge));
    assert.ok(ms < 500, `closed after ${ms} ms`);
    const after = gw.app.gateway.metrics().rejected;
    assert.equal(after.too_large + after.invalid, before.too_large + before.invalid + 1);
  });

  it('closes a truncated ClientHello when the client hangs up, and one that stalls at the deadline', async () => {
    const hello = await captureClientHello({ servername: SESSION });
    const cut = hello.subarray(0, Math.floor(hello.length / 2));
    const early = await timeToClose(gw, (s) => void s.end(cut));
    assert.ok(early.ms < 500, `closed ${early.ms} ms after the client's FIN`);
    const stalled = await timeToClose(gw, (s) => void s.write(cut));
    assert.ok(stalled.ms >= DEADLINE_MS - 100 && stalled.ms <= DEADLINE_MS + 1000, `stalled hello closed after ${stalled.ms} ms`);
    assert.equal(early.reply.length + stalled.reply.length, 0, 'nothing sent back');
  });

  it('closes random garbage at once, sending nothing back', async () => {
    for (let i = 0; i < 20; i++) {
      const junk = randomBytes(1 + (i * 97) % 3000);
      // Not a TLS record, and not a possible HTTP method (those get the plain-HTTP 400).
      if (junk[0] === 0x16 || (junk[0]! >= 0x41 && junk[0]! <= 0x5a)) junk[0] = 0x17;
      const { ms, reply } = await timeToClose(gw, (s) => void s.write(junk));
      assert.ok(ms < 500, `garbage closed after ${ms} ms`);
      assert.equal(reply.length, 0);
    }
  });

  it('cuts a slowloris that drips a ClientHello forever at the total deadline', async () => {
    const hello = await captureClientHello({ servername: SESSION });
    let stop = false;
    const { ms } = await timeToClose(gw, (s) => {
      void (async () => {
        for (let i = 0; i < hello.length && !stop && !s.destroyed; i++) {
          s.write(hello.subarray(i, i + 1));
          await sleep(100);
        }
      })();
    });
    stop = true;
    assert.ok(ms >= DEADLINE_MS - 100 && ms <= DEADLINE_MS + 1000, `drip cut after ${ms} ms`);
  });

  it('cuts a client that connects and sends nothing at the deadline', async () => {
    const { ms } = await timeToClose(gw, () => {});
    assert.ok(ms >= DEADLINE_MS - 100 && ms <= DEADLINE_MS + 1000, `silent client cut after ${ms} ms`);
  });

  it('cuts a TLS handshake on the API host that stalls after the ClientHello', async () => {
    const hello = await captureClientHello({ servername: 'hackstream.test' });
    // The gateway hands it to the TLS server; its handshake deadline must close it too.
    const small = await startGateway({ gateway: { clientHelloTimeoutMs: DEADLINE_MS, tlsHandshakeTimeoutMs: 1000 } });
    try {
      const s = await rawConnect(small.port);
      const got = collect(s);
      s.write(hello);
      const t0 = Date.now();
      await got;
      const ms = Date.now() - t0;
      assert.ok(ms >= 900 && ms <= 2000, `stalled handshake closed after ${ms} ms`);
    } finally {
      await small.close();
    }
  });

  it('cuts an HTTP client that drips its headers forever (slowloris on the API host)', async () => {
    const small = await startGateway({ gateway: { httpHeadersTimeoutMs: 1000, httpRequestTimeoutMs: 2000 } });
    try {
      const s = await tlsConnect({ port: small.port, servername: 'hackstream.test', ca: small.ca });
      const reply = collect(s);
      s.write('GET /health HTTP/1.1\r\nHost: hackstream.test\r\n');
      const t0 = Date.now();
      const drip = setInterval(() => s.writable && s.write('X-Slow: 1\r\n'), 200);
      const text = (await reply).toString();
      clearInterval(drip);
      const ms = Date.now() - t0;
      assert.ok(ms >= 900 && ms <= 2500, `header slowloris cut after ${ms} ms`);
      assert.match(text, /^HTTP\/1\.1 408 /, 'answered 408 Request Timeout');
    } finally {
      await small.close();
    }
  });

  it('still serves /health and routes sessions after all of the above', async () => {
    assert.equal((await httpsRequest(gw.port, gw.ca, '/health')).status, 200);
    assert.equal(await echoThrough(gw, {}), 'through');
    const m = gw.app.gateway.metrics();
    assert.equal(m.pendingConnections, 0, 'no connection left in the ClientHello stage');
  });
});
