import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { loadOrCreateCa } from '../../core/certs/ca.js';
import { issueSessionCert } from '../../core/certs/session-cert.js';
import { sessionUpgrade } from '../../gateway/ws-session.js';
import { silentLogger } from '../../lib/log.js';
import { MemoryRouteTable } from '../../lib/route-table.js';
import { startTlsBackend, type TlsBackend } from '../helpers/gateway.js';
import { portOf } from '../helpers/net.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * The edge's relay of a browser WebSocket to a session (gateway/ws-session.ts), with a stand-in
 * control on a Unix socket (owner → the session's hostname and CA; another user → 404; no
 * cookie → 401) and a real TLS backend with a session certificate standing in for xpra.
 */

const ID = '0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3';
const SNI = `${ID}.sessions.test`;
const ORIGIN = 'https://hackstream.test';
const scratch = scratchDirs('hs-wsrel-');

let control: http.Server;
let edge: http.Server;
let backend: TlsBackend;
let strangerBackend: TlsBackend;
let caPem = '';
const routes = new MemoryRouteTable();
const relays: Array<[string, number]> = [];
/** What the backend received before the 101 (the handshake the edge sent). */
const seen: string[] = [];

function answerUpgrade(s: Duplex): void {
  let buf = '';
  const onData = (c: Buffer) => {
    buf += c.toString('latin1');
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    s.off('data', onData);
    seen.push(buf.slice(0, end));
    s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
    const rest = buf.slice(end + 4);
    if (rest) s.write(rest);
    s.pipe(s);
  };
  s.on('data', onData);
}

before(async () => {
  const dir = scratch();
  mkdirSync(join(dir, 'ca'));
  mkdirSync(join(dir, 'other-ca'));
  const ca = await loadOrCreateCa(join(dir, 'ca'), silentLogger());
  caPem = ca.certPem;
  backend = await startTlsBackend(await issueSessionCert(ca, SNI, 1), answerUpgrade);
  const otherCa = await loadOrCreateCa(join(dir, 'other-ca'), silentLogger());
  strangerBackend = await startTlsBackend(await issueSessionCert(otherCa, SNI, 1), answerUpgrade);
  const sock = join(dir, 'api.sock');
  control = http.createServer((req, res) => {
    const cookie = req.headers.cookie ?? '';
    const ok = req.method === 'POST' && req.url === `/web/api/sessions/${ID}/tunnel` && req.headers.origin === ORIGIN;
    if (!cookie) res.writeHead(401).end();
    else if (!ok || cookie !== 'who=owner') res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sni: SNI, ca_cert: caPem }));
  });
  await new Promise<void>((r) => control.listen(sock, r));
  const handler = sessionUpgrade({
    socketPath: sock,
    routes,
    limits: { upstreamConnectTimeoutMs: 5_000, tunnelIdleTimeoutMs: 60_000, maxTunnelsPerRoute: 2 },
    fallback: (_req, s) => s.end('HTTP/1.1 418 Fallback\r\nContent-Length: 0\r\n\r\n'),
    onRelays: (h, n) => relays.push([h, n]),
    logger: silentLogger(),
  });
  edge = http.createServer((_req, res) => res.writeHead(404).end());
  edge.on('upgrade', handler);
  await new Promise<void>((r) => edge.listen(0, '127.0.0.1', r));
});

after(async () => {
  edge?.closeAllConnections();
  await Promise.all([
    new Promise((r) => edge?.close(r)),
    new Promise((r) => control?.close(r)),
    backend?.close(),
    strangerBackend?.close(),
  ]);
});

/** Sends a WebSocket handshake to the edge; resolves with the status and, on 101, the socket. */
function upgrade(o: { path?: string; cookie?: string; key?: string } = {}): Promise<{ status: number; socket?: Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: portOf(edge),
      agent: false,
      path: o.path ?? `/web/ws/${ID}`,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': o.key ?? 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        'sec-websocket-protocol': 'binary',
        origin: ORIGIN,
        ...(o.cookie ? { cookie: o.cookie } : {}),
      },
    });
    req.on('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, socket }));
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the edge relays a browser WebSocket only for the session owner', () => {
  it('refuses, before any byte reaches the session, as control answers', async () => {
    await routes.add(SNI, { host: '127.0.0.1', port: backend.port });
    const cases: Array<[string, Parameters<typeof upgrade>[0], number]> = [
      ['no cookie', {}, 401],
      ["another user's cookie", { cookie: 'who=other' }, 404],
      ['a malformed key', { cookie: 'who=owner', key: 'nope' }, 400],
      ['another path goes to control', { path: '/v1/something' }, 418],
    ];
    for (const [what, o, status] of cases) assert.equal((await upgrade(o)).status, status, what);
    assert.equal(backend.servernames.length, 0, 'the backend saw no connection');
  });

  it("relays the owner's frames over TLS verified against the session CA, without the cookie", async () => {
    const r = await upgrade({ cookie: 'who=owner' });
    assert.equal(r.status, 101);
    assert.ok(r.socket);
    assert.deepEqual(backend.servernames, [SNI]);
    const handshake = seen.at(-1) ?? '';
    assert.match(handshake, /^GET \/ HTTP\/1\.1\r\n/);
    assert.match(handshake, new RegExp(`\\r\\nHost: ${SNI}\\r\\n`));
    assert.match(handshake, /\r\nSec-WebSocket-Protocol: binary(\r\n|$)/);
    assert.doesNotMatch(handshake, /cookie|origin/i);
    r.socket.write('ping-1');
    const [echo] = (await once(r.socket, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'ping-1');
    assert.deepEqual(relays.at(-1), [SNI, 1]);
    // Removing the route (the session stopped) cuts the relay.
    const closed = once(r.socket, 'close');
    await routes.remove(SNI);
    await closed;
    assert.deepEqual(relays.at(-1), [SNI, 0]);
  });

  it('refuses an upstream whose certificate another CA signed (502), and a session without a route (503)', async () => {
    assert.equal((await upgrade({ cookie: 'who=owner' })).status, 503);
    await routes.add(SNI, { host: '127.0.0.1', port: strangerBackend.port });
    assert.equal((await upgrade({ cookie: 'who=owner' })).status, 502);
    await routes.remove(SNI);
  });
});
