/**
 * Issue 12: only the client that asked reaches a session's xpra. A route may carry admissions
 * (client address + until); the edge lets a tunnel through only from an admitted address whose
 * admission has not expired, caps the tunnels per route, and answers everyone else with a TLS
 * access_denied alert before a single byte reaches the upstream. Real TLS end to end: the
 * backend is a node:tls server, the clients real TLS clients dialling from 127.0.0.1 or 127.0.0.2.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { Gateway } from '../../gateway/gateway.js';
import { toEdgeSchema } from '../../lib/edge-link.js';
import { gatewaySchema } from '../../lib/limits.js';
import { silentLogger } from '../../lib/log.js';
import { checkRoute, isAdmitted, MAX_ADMISSIONS, MemoryRouteTable, withAdmission, type Upstream } from '../../lib/route-table.js';
import { waitFor } from '../helpers/net.js';
import { selfSigned } from '../helpers/self-signed.js';

const HOST = 'sess-1.admit.test';

describe('gateway: tunnels only from admitted addresses, a few per route', () => {
  let gw: Gateway;
  let port: number;
  let routes: MemoryRouteTable;
  let backend: tls.Server;
  let backendPort: number;
  let backendConnections = 0;
  let upstream: Upstream;

  before(async () => {
    const api = selfSigned('api.admit.test');
    const sess = selfSigned(HOST);
    backend = tls.createServer({ key: sess.keyPem, cert: sess.certPem }, (s) => {
      backendConnections++;
      s.on('error', () => {});
      s.pipe(s);
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    backendPort = (backend.address() as { port: number }).port;
    upstream = { host: '127.0.0.1', port: backendPort };
    routes = new MemoryRouteTable();
    gw = new Gateway({
      publicHost: 'api.admit.test',
      limits: gatewaySchema.parse({ maxTunnelsPerRoute: 2 }),
      routes,
      apiCert: { current: () => api, onChange: () => () => {}, close: async () => {} },
      app: (_req, res) => res.end('ok'),
      logger: silentLogger(),
    });
    port = (await gw.listen('0.0.0.0', 0)).port;
  });
  after(async () => {
    await gw.close(100);
    backend.close();
  });

  /** A TLS client through the gateway from `from`; resolves with the socket once an echo came back, or rejects. */
  async function open(from: string): Promise<tls.TLSSocket> {
    const raw = net.connect({ host: '127.0.0.1', port, localAddress: from });
    raw.on('error', () => {});
    const s = tls.connect({ socket: raw, servername: HOST, rejectUnauthorized: false });
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.once('close', () => reject(new Error('closed before the echo')));
      s.once('secureConnect', () => s.write('ping'));
      s.once('data', (d: Buffer) => (d.toString() === 'ping' ? resolve() : reject(new Error(`echo ${d.toString()}`))));
    });
    return s;
  }
  const refusal = (from: string) =>
    open(from).then(
      (s) => {
        s.destroy();
        return 'admitted';
      },
      (err: NodeJS.ErrnoException) => err.code ?? err.message,
    );

  it('a route with no admissions lets anyone in (routes that predate admission)', async () => {
    await routes.add(HOST, upstream);
    const s = await open('127.0.0.1');
    s.destroy();
    assert.ok(await waitFor(() => gw.tunnelCount(HOST) === 0, 5_000), 'the tunnel closed');
  });

  it('an empty admission list lets nobody in: TLS access_denied, nothing reaches the upstream', async () => {
    await routes.add(HOST, { ...upstream, admit: [] });
    const before = { conns: backendConnections, refused: gw.metrics().rejected.not_admitted };
    assert.equal(await refusal('127.0.0.1'), 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    assert.equal(backendConnections, before.conns, 'the upstream never saw the connection');
    assert.equal(gw.metrics().rejected.not_admitted, before.refused + 1);
    assert.equal(gw.tunnelCount(HOST), 0, 'a refused connection never counts as a tunnel (nor as "connected")');
  });

  it('the admitted address gets through; another address does not', async () => {
    await routes.add(HOST, withAdmission({ ...upstream, admit: [] }, '127.0.0.2', Date.now() + 60_000, Date.now()));
    assert.equal(await refusal('127.0.0.1'), 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    const s = await open('127.0.0.2');
    assert.equal(gw.tunnelCount(HOST), 1);
    s.destroy();
    assert.ok(await waitFor(() => gw.tunnelCount(HOST) === 0, 5_000), 'the tunnel closed');
  });

  it('an expired admission lets nobody new in, but a tunnel opened in time keeps flowing', async () => {
    const until = Date.now() + 1_500;
    await routes.add(HOST, withAdmission({ ...upstream, admit: [] }, '127.0.0.2', until, Date.now()));
    const s = await open('127.0.0.2');
    assert.ok(await waitFor(() => Date.now() > until, 5_000), 'the admission expired');
    assert.equal(await refusal('127.0.0.2'), 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    s.write('still here');
    const [echo] = (await once(s, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'still here');
    s.destroy();
    assert.ok(await waitFor(() => gw.tunnelCount(HOST) === 0, 5_000), 'the tunnel closed');
  });

  it('caps the tunnels per route (maxTunnelsPerRoute = 2): the third is refused until one closes', async () => {
    await routes.add(HOST, withAdmission(upstream, '127.0.0.1', Date.now() + 60_000, Date.now()));
    const a = await open('127.0.0.1');
    const b = await open('127.0.0.1');
    const before = gw.metrics().rejected.route_tunnel_limit;
    assert.equal(await refusal('127.0.0.1'), 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
    assert.equal(gw.metrics().rejected.route_tunnel_limit, before + 1);
    a.destroy();
    assert.ok(await waitFor(() => gw.tunnelCount(HOST) === 1, 5_000), 'one tunnel closed');
    const c = await open('127.0.0.1');
    b.destroy();
    c.destroy();
  });
});

describe('route admissions: validation and what crosses processes', () => {
  const up = { host: '10.0.0.2', port: 14500 };

  it('normalises IPv4-mapped addresses and refuses what is not an IP address', () => {
    const r = checkRoute('a.test', { ...up, admit: [{ address: '::ffff:192.0.2.7', until: 10 }] });
    assert.deepEqual(r.upstream.admit, [{ address: '192.0.2.7', until: 10 }]);
    assert.ok(isAdmitted(r.upstream, '::ffff:192.0.2.7', 5));
    assert.ok(!isAdmitted(r.upstream, '192.0.2.7', 10), 'until is exclusive');
    assert.throws(() => checkRoute('a.test', { ...up, admit: [{ address: 'evil.example', until: 10 }] }), /not an IP address/);
    assert.throws(() => checkRoute('a.test', { ...up, admit: [{ address: '192.0.2.1', until: -1 }] }), /until/);
  });

  it('withAdmission drops expired entries, refreshes an address and keeps at most the newest MAX_ADMISSIONS', () => {
    let u: Upstream = { ...up, admit: [{ address: '192.0.2.1', until: 5 }] };
    u = withAdmission(u, '192.0.2.2', 100, 10);
    assert.deepEqual(u.admit, [{ address: '192.0.2.2', until: 100 }], 'the expired entry is gone');
    u = withAdmission(u, '192.0.2.2', 200, 10);
    assert.deepEqual(u.admit, [{ address: '192.0.2.2', until: 200 }], 'one entry per address');
    for (let i = 0; i < MAX_ADMISSIONS + 5; i++) u = withAdmission(u, `198.51.100.${i}`, 1_000 + i, 10);
    assert.equal(u.admit?.length, MAX_ADMISSIONS);
    assert.ok(u.admit?.some((e) => e.address === `198.51.100.${MAX_ADMISSIONS + 4}`), 'the newest is kept');
  });

  it('the edge link carries admissions; a malformed one is refused by its schema', () => {
    const ok = toEdgeSchema.safeParse({ t: 'route', seq: 1, op: 'add', hostname: 'a.test', upstream: { ...up, admit: [{ address: '192.0.2.1', until: 99 }] } });
    assert.ok(ok.success);
    const bad = toEdgeSchema.safeParse({ t: 'route', seq: 1, op: 'add', hostname: 'a.test', upstream: { ...up, admit: [{ address: '192.0.2.1' }] } });
    assert.ok(!bad.success);
  });
});
