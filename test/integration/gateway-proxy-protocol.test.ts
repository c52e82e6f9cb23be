/**
 * Issue 16, "Behind another proxy": the edge on a dual-stack listener (`[::]`), reading PROXY
 * protocol headers (v2 and v1) from trusted peers only. What the header names is the client: the
 * API sees it as the socket's address (hence X-Forwarded-For to control), a session route admits
 * by it, per-IP caps count it (IPv6 by /64). Untrusted peers that send a header, trusted ones that
 * send none, and malformed, truncated or stalled headers are closed and counted. Real TLS clients
 * and a real node:tls backend; the load balancer is played by sockets bound to 127.0.0.5 and ::1
 * (test/integration/gateway-haproxy.test.ts puts the real HAProxy in front).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Gateway } from '../../gateway/gateway.js';
import { gatewaySchema } from '../../lib/limits.js';
import { silentLogger } from '../../lib/log.js';
import { buildProxyV2, V2_SIGNATURE } from '../../lib/proxy-protocol.js';
import { MemoryRouteTable, withAdmission, type Upstream } from '../../lib/route-table.js';
import type { RejectReason } from '../../lib/edge-metrics.js';
import { closed, waitFor } from '../helpers/net.js';
import { selfSigned } from '../helpers/self-signed.js';

const API_HOST = 'api.proxy.test';
const SESSION = 'sess-1.proxy.test';
/** The load balancers the edge trusts: one on IPv4, one on IPv6. */
const LB4 = '127.0.0.5';
const LB6 = '::1';
const EDGE = { ipv4: '127.0.0.1', ipv6: '::1' };

const apiCert = selfSigned(API_HOST);
/** The API answers with the client address and port its socket reports. */
const app = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) =>
  res.end(JSON.stringify({ ip: req.socket.remoteAddress, port: req.socket.remotePort }));

function startGateway(extra: Record<string, unknown>, routes = new MemoryRouteTable()): Gateway {
  return new Gateway({
    publicHost: API_HOST,
    limits: gatewaySchema.parse(extra),
    routes,
    apiCert: { current: () => apiCert, onChange: () => () => {}, close: async () => {} },
    app,
    logger: silentLogger(),
  });
}

/** A raw connection to the edge from `from` (over IPv6 when `from` is). */
async function dial(port: number, from: string): Promise<net.Socket> {
  const host = net.isIPv6(from) ? EDGE.ipv6 : EDGE.ipv4;
  const s = net.connect({ host, port, localAddress: from, allowHalfOpen: true });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

/** TLS to `servername` over `raw` (a PROXY header may already be written on it). */
function secure(raw: net.Socket, servername: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ socket: raw, servername, rejectUnauthorized: false });
    s.on('error', () => {});
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed during the handshake')));
    s.once('secureConnect', () => resolve(s));
  });
}

/** One GET to the API over `s`; resolves with what the API saw. */
async function whoAmI(s: tls.TLSSocket): Promise<{ ip: string; port: number }> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.write(`GET / HTTP/1.1\r\nHost: ${API_HOST}\r\nConnection: close\r\n\r\n`);
  await once(s, 'end');
  const text = Buffer.concat(chunks).toString();
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { ip: string; port: number };
}

/** An echo through a session tunnel: resolves 'ok', or the TLS error code / message that ended it. */
async function echo(raw: net.Socket): Promise<{ result: string; socket?: tls.TLSSocket }> {
  try {
    const s = await secure(raw, SESSION);
    s.write('ping');
    const [d] = (await once(s, 'data')) as [Buffer];
    return { result: d.toString() === 'ping' ? 'ok' : `echo ${d.toString()}`, socket: s };
  } catch (err) {
    return { result: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
}

const v2 = (address: string, port = 40_000) => buildProxyV2({ address, port }, { address: net.isIPv6(address) ? '2001:db8::443' : '192.0.2.1', port: 443 });
const v1 = (address: string, port = 40_000) => `PROXY ${net.isIPv6(address) ? 'TCP6' : 'TCP4'} ${address} ${net.isIPv6(address) ? '2001:db8::443' : '192.0.2.1'} ${port} 443\r\n`;

describe('the edge on [::] without PROXY protocol', () => {
  let gw: Gateway;
  let port: number;
  before(async () => {
    gw = startGateway({});
    port = (await gw.listen('::', 0)).port;
  });
  after(() => gw.close(100));

  it('accepts IPv4 (127.0.0.1) and IPv6 (::1) clients on one listener, each seen by its own address', async () => {
    assert.deepEqual((await whoAmI(await secure(await dial(port, '127.0.0.1'), API_HOST))).ip, '::ffff:127.0.0.1');
    assert.deepEqual((await whoAmI(await secure(await dial(port, '::1'), API_HOST))).ip, '::1');
    assert.equal(gw.metrics().terminated, 2);
  });

  it('a PROXY header from a peer nobody trusts is refused and counted as proxy_untrusted (v2 and v1)', async () => {
    for (const header of [v2('198.51.100.7'), Buffer.from(v1('198.51.100.7'))]) {
      const before = gw.metrics().rejected.proxy_untrusted;
      const s = await dial(port, '127.0.0.1');
      s.write(header);
      await closed(s);
      assert.equal(gw.metrics().rejected.proxy_untrusted, before + 1);
    }
  });
});

describe('the edge on [::] behind trusted load balancers (gateway.proxyProtocol)', () => {
  let gw: Gateway;
  let port: number;
  let routes: MemoryRouteTable;
  let backend: tls.Server;
  let upstream: Upstream;
  const backendSaw: string[] = [];
  const rejected = (r: RejectReason) => gw.metrics().rejected[r];

  before(async () => {
    const sess = selfSigned(SESSION);
    backend = tls.createServer({ key: sess.keyPem, cert: sess.certPem }, (s) => {
      backendSaw.push(s.servername || '');
      s.on('error', () => {});
      s.pipe(s);
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    upstream = { host: '127.0.0.1', port: (backend.address() as net.AddressInfo).port };
    routes = new MemoryRouteTable();
    gw = startGateway(
      { proxyProtocol: { trusted: [`${LB4}/32`, LB6] }, maxConnectionsPerIp: 2, maxTunnelsPerRoute: 16, clientHelloTimeoutMs: 1_500 },
      routes,
    );
    port = (await gw.listen('::', 0)).port;
  });
  after(async () => {
    await gw.close(100);
    backend.close();
  });

  it('the API sees the client a v2 header names, from an IPv4 and from an IPv6 load balancer', async () => {
    for (const [lb, client] of [
      [LB4, '198.51.100.7'],
      [LB6, '2001:db8:aa::7'],
      [LB4, '2001:db8:aa::8'],
      [LB6, '203.0.113.9'],
    ] as const) {
      const raw = await dial(port, lb);
      raw.write(v2(client, 4711));
      assert.deepEqual(await whoAmI(await secure(raw, API_HOST)), { ip: client, port: 4711 }, `${client} via ${lb}`);
    }
  });

  it('reads v1 (text) headers too, and a header that arrives one byte at a time', async () => {
    const raw = await dial(port, LB4);
    raw.write(v1('198.51.100.10', 5000));
    assert.deepEqual(await whoAmI(await secure(raw, API_HOST)), { ip: '198.51.100.10', port: 5000 });
    const slow = await dial(port, LB6);
    for (const b of v2('2001:db8:bb::1', 6000)) {
      slow.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(await whoAmI(await secure(slow, API_HOST)), { ip: '2001:db8:bb::1', port: 6000 });
  });

  it('a session route admits by the header\'s address; the upstream gets the ClientHello without the header', async () => {
    await routes.add(SESSION, withAdmission({ ...upstream, admit: [] }, '198.51.100.7', Date.now() + 60_000, Date.now()));
    const seen = backendSaw.length;
    const raw = await dial(port, LB4);
    raw.write(v2('198.51.100.7'));
    const ok = await echo(raw);
    assert.equal(ok.result, 'ok', 'the admitted client gets through the load balancer');
    assert.deepEqual(backendSaw.slice(seen), [SESSION], 'the backend completed a TLS handshake: no header reached it');
    ok.socket?.destroy();
    const other = await dial(port, LB4);
    other.write(v2('198.51.100.8'));
    assert.equal((await echo(other)).result, 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'another client behind the same load balancer is not admitted');
    // The load balancer's own address is admitted nowhere: admission is by client.
    await routes.add(SESSION, withAdmission({ ...upstream, admit: [] }, LB4, Date.now() + 60_000, Date.now()));
    const lbItself = await dial(port, LB4);
    lbItself.write(v2('198.51.100.7'));
    assert.equal((await echo(lbItself)).result, 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
  });

  it('per-IP caps count the client, IPv6 by /64: a third connection from one /64 is refused, the next /64 is not, the load balancer is never capped', async () => {
    await routes.add(SESSION, upstream);
    const open: tls.TLSSocket[] = [];
    for (const client of ['2001:db8:1:2::a', '2001:db8:1:2:ffff::b']) {
      const raw = await dial(port, LB6);
      raw.write(v2(client));
      const r = await echo(raw);
      assert.equal(r.result, 'ok', client);
      if (r.socket) open.push(r.socket);
    }
    const before = rejected('per_ip_limit');
    const third = await dial(port, LB6);
    third.write(v2('2001:db8:1:2::c'));
    assert.notEqual((await echo(third)).result, 'ok', 'the same /64 is at maxConnectionsPerIp (2)');
    assert.equal(rejected('per_ip_limit'), before + 1);
    for (const client of ['2001:db8:1:3::c', '198.51.100.20', '198.51.100.21']) {
      const raw = await dial(port, LB6);
      raw.write(v2(client));
      const r = await echo(raw);
      assert.equal(r.result, 'ok', `${client}: another source, and the load balancer's 5th connection`);
      if (r.socket) open.push(r.socket);
    }
    for (const s of open) s.destroy();
    assert.ok(await waitFor(() => gw.tunnelCount(SESSION) === 0, 5_000));
    // The closed ones freed their /64's slots.
    const again = await dial(port, LB4);
    again.write(v2('2001:db8:1:2::d'));
    const r = await echo(again);
    assert.equal(r.result, 'ok');
    r.socket?.destroy();
  });

  it('a trusted load balancer that sends no header is refused (proxy_missing), before any TLS answer', async () => {
    for (const lb of [LB4, LB6]) {
      const before = rejected('proxy_missing');
      const raw = await dial(port, lb);
      await assert.rejects(secure(raw, API_HOST));
      assert.equal(rejected('proxy_missing'), before + 1, lb);
    }
  });

  it('a malformed header is refused (proxy_invalid): bad version, UDP, a TLV past the end, a bad v1 line', async () => {
    const bad = [
      Buffer.concat([V2_SIGNATURE, Buffer.from([0x31, 0x11, 0, 12]), Buffer.alloc(12)]),
      Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x12, 0, 12]), Buffer.alloc(12)]),
      Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0, 15]), Buffer.alloc(12), Buffer.from([0x04, 0, 9])]),
      Buffer.from('PROXY TCP4 198.51.100.7 192.0.2.1 99999 443\r\n'),
    ];
    for (const header of bad) {
      const before = rejected('proxy_invalid');
      const raw = await dial(port, LB4);
      raw.write(header);
      await closed(raw);
      assert.equal(rejected('proxy_invalid'), before + 1, header.toString('hex'));
    }
  });

  it('a truncated header is closed when the peer hangs up (closed_early), and one that stalls at the deadline (proxy_timeout)', async () => {
    const header = v2('198.51.100.7');
    const early = rejected('closed_early');
    const cut = await dial(port, LB4);
    cut.end(header.subarray(0, 20));
    await closed(cut);
    assert.ok(await waitFor(() => rejected('closed_early') === early + 1, 5_000));
    const timeouts = rejected('proxy_timeout');
    const stall = await dial(port, LB6);
    stall.write(header.subarray(0, 13));
    await closed(stall);
    assert.equal(rejected('proxy_timeout'), timeouts + 1);
    assert.equal(gw.metrics().pendingConnections, 0);
  });

  it('300 mutated and truncated headers from a trusted peer: each connection is closed and counted, the edge keeps serving', async () => {
    const sum = () => Object.values(gw.metrics().rejected).reduce((a, b) => a + b, 0);
    const before = { rejected: sum(), terminated: gw.metrics().terminated, routed: gw.metrics().routed };
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constant(v2('198.51.100.7')), fc.constant(v2('2001:db8::7')), fc.constant(Buffer.from(v1('198.51.100.7')))),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
        fc.nat(),
        async (header, flips, cut) => {
          const bytes = Buffer.from(header);
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          // Whatever it is, the peer then hangs up: a header that still parsed waits for a ClientHello that never comes.
          const raw = await dial(port, LB4);
          raw.end(bytes.subarray(0, 1 + (cut % bytes.length)));
          await closed(raw);
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(await waitFor(() => sum() === before.rejected + 300, 5_000), `${sum() - before.rejected} of 300 counted`);
    assert.equal(gw.metrics().terminated, before.terminated, 'none reached TLS');
    assert.equal(gw.metrics().routed, before.routed);
    assert.equal(gw.metrics().pendingConnections, 0);
    const raw = await dial(port, LB4);
    raw.write(v2('198.51.100.7', 1234));
    assert.deepEqual(await whoAmI(await secure(raw, API_HOST)), { ip: '198.51.100.7', port: 1234 });
  });

  it('an untrusted peer with a header is refused (proxy_untrusted); without one it is served as itself', async () => {
    const before = rejected('proxy_untrusted');
    const raw = await dial(port, '127.0.0.1');
    raw.write(v2('198.51.100.7'));
    await closed(raw);
    assert.equal(rejected('proxy_untrusted'), before + 1);
    assert.equal((await whoAmI(await secure(await dial(port, '127.0.0.1'), API_HOST))).ip, '::ffff:127.0.0.1');
  });
});
