/**
 * Issue 16, "Behind another proxy", with Debian's real HAProxy in front: HAProxy owns the public
 * port (`mode tcp`, routing on `req.ssl_sni` without decrypting) and sends both the API hostname
 * and the session hostnames to HackStream's edge with `send-proxy-v2`, from 127.0.0.5, the one
 * address the edge trusts (`gateway.proxyProtocol.trusted`). Clients dial HAProxy from their own
 * loopback addresses (127.0.0.2, .3, .4), so the address in the header is never HAProxy's: the
 * audit, the login throttle and a session's admission must all see the client's.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { buildProxyV2 } from '../../lib/proxy-protocol.js';
import { withAdmission } from '../../lib/route-table.js';
import { errorCode, request, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST, SESSION_DOMAIN, startTlsBackend, type TlsBackend } from '../helpers/gateway.js';
import { closed, freePort, tlsConnect, waitFor } from '../helpers/net.js';

const HAPROXY = '/usr/sbin/haproxy';
const LB = '127.0.0.5';
const SESSION = `s1.${SESSION_DOMAIN}`;

interface AuditItem {
  action: string;
  target: string | null;
  source_ip: string | null;
}

function haproxyConfig(listenPort: number, edgePort: number): string {
  return `global
    maxconn 512

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend public
    bind 127.0.0.1:${listenPort}
    # Wait for the whole ClientHello before routing on its SNI (issue haproxy#3148).
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend hackstream if { req.ssl_sni -i ${PUBLIC_HOST} }
    use_backend hackstream if { req.ssl_sni -m end -i .${SESSION_DOMAIN} }

backend hackstream
    server edge 127.0.0.1:${edgePort} send-proxy-v2 source ${LB}
`;
}

describe('HackStream behind HAProxy (send-proxy-v2, SNI passthrough)', () => {
  let api: TestApi;
  let haproxy: ChildProcess;
  let haproxyLog = '';
  let port: number;
  let backend: TlsBackend;
  const dir = mkdtempSync(join(tmpdir(), 'hs-haproxy-'));
  const via = (path: string, from: string, o: { body?: unknown; token?: string } = {}) =>
    request({ port, ca: api.gw.ca }, o.body === undefined ? 'GET' : 'POST', path, { ...o, localAddress: from });
  const audit = async (action: string): Promise<AuditItem[]> => {
    const r = await api.request('GET', `/v1/audit?action=${action}&limit=100`, { token: await api.adminToken() });
    return (r.json as { items: AuditItem[] }).items;
  };
  const sourceOf = (i: AuditItem) => i.source_ip;

  before(async () => {
    api = await startApi({ config: { gateway: { proxyProtocol: { trusted: [LB] } } } });
    await api.createUser('alice', 'alice password 1');
    backend = await startTlsBackend(await api.gw.app.certs.issueSessionCert(SESSION));
    port = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(port, api.port));
    haproxy = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout?.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    haproxy.stderr?.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    haproxy.on('error', (err) => (haproxyLog += `${err.message} (is the haproxy package installed? scripts/test.sh installs it)\n`));
    const listening = await waitFor(
      () =>
        haproxy.exitCode === null &&
        new Promise<boolean>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port }, () => resolve(true));
          s.on('error', () => resolve(false));
          s.on('connect', () => s.destroy());
        }),
      15_000,
      100,
    );
    assert.ok(listening, `HAProxy did not start:\n${haproxyLog}`);
  });
  after(async () => {
    if (haproxy && haproxy.exitCode === null) {
      haproxy.kill('SIGTERM');
      await once(haproxy, 'exit');
    }
    await backend?.close();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a login through HAProxy is audited with the client address from the header, not HAProxy\'s', async () => {
    const r = await via('/v1/login', '127.0.0.2', { body: { username: 'alice', password: 'alice password 1' } });
    assert.equal(r.status, 200, r.text);
    const rows = (await audit('authn_login_success')).filter((i) => sourceOf(i) !== '127.0.0.1');
    assert.deepEqual(rows.map(sourceOf), ['127.0.0.2'], 'one login from the client, none from HAProxy (127.0.0.5) or the edge');
    const me = await via('/v1/me', '127.0.0.2', { token: (r.json as { access_token: string }).access_token });
    assert.equal(me.status, 200, 'the API works through HAProxy with a token too');
  });

  it('the login throttle bans the client behind HAProxy, not HAProxy: another client through it still logs in', async () => {
    let last: ApiResponse | undefined;
    for (let i = 0; i < 6; i++) last = await via('/v1/login', '127.0.0.3', { body: { username: `nobody-${i}`, password: 'wrong wrong wrong' } });
    assert.equal(last?.status, 429, 'the 6th failure from one client is refused (ipFailLimit 5)');
    assert.equal(last && errorCode(last), 'RATE_LIMITED');
    const banned = await via('/v1/login', '127.0.0.3', { body: { username: 'alice', password: 'alice password 1' } });
    assert.equal(banned.status, 429, 'the banned client is refused even with the right password');
    const other = await via('/v1/login', '127.0.0.4', { body: { username: 'alice', password: 'alice password 1' } });
    assert.equal(other.status, 200, 'another client behind the same HAProxy is not banned');
    const bans = await audit('excess_rate_limit_exceeded');
    assert.deepEqual(
      bans.map((b) => [b.target, sourceOf(b)]),
      [['127.0.0.3', '127.0.0.3']],
    );
    const failures = await audit('authn_login_fail');
    assert.ok(failures.length >= 5 && failures.every((f) => sourceOf(f) === '127.0.0.3'), JSON.stringify(failures.map(sourceOf)));
  });

  it('a session hostname passes through HAProxy and the edge undecrypted; its admission is the client\'s address', async () => {
    await api.gw.app.routes.add(SESSION, withAdmission({ host: '127.0.0.1', port: backend.port, admit: [] }, '127.0.0.2', Date.now() + 120_000, Date.now()));
    const s = await tlsConnect({ port, servername: SESSION, ca: api.gw.ca, localAddress: '127.0.0.2' });
    assert.equal(s.getPeerCertificate().subjectaltname, `DNS:${SESSION}`, 'the session backend\'s own certificate');
    s.write('ping');
    const [echo] = (await once(s, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'ping');
    assert.equal(backend.servernames.at(-1), SESSION);
    s.destroy();
    const refused = await tlsConnect({ port, servername: SESSION, ca: api.gw.ca, localAddress: '127.0.0.3' }).then(
      (t) => {
        t.destroy();
        return 'admitted';
      },
      (err: NodeJS.ErrnoException) => err.code,
    );
    assert.equal(refused, 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'a client the route does not admit, through the same HAProxy');
  });

  it('a PROXY header straight from an untrusted address is refused; so is the trusted address without one', async () => {
    const m = () => api.gw.app.gateway.metrics().rejected;
    const before = { untrusted: m().proxy_untrusted, missing: m().proxy_missing };
    const spoof = net.connect({ host: '127.0.0.1', port: api.port, localAddress: '127.0.0.2' });
    spoof.on('error', () => {});
    await once(spoof, 'connect');
    spoof.write(buildProxyV2({ address: '198.51.100.1', port: 1 }, { address: '127.0.0.1', port: api.port }));
    await closed(spoof);
    assert.equal(m().proxy_untrusted, before.untrusted + 1);
    const bare = await tlsConnect({ port: api.port, servername: PUBLIC_HOST, ca: api.gw.ca, localAddress: LB }).then(
      (t) => {
        t.destroy();
        return 'served';
      },
      () => 'refused',
    );
    assert.equal(bare, 'refused');
    assert.ok(await waitFor(() => m().proxy_missing === before.missing + 1, 5_000), 'counted as proxy_missing');
  });

  it('IPv6 clients (the header carries any source): the throttle bans a /64, the audit keeps the full address', async () => {
    // Loopback has one IPv6 address, so these clients reach the edge as HAProxy would send them:
    // from the trusted address, each behind its own v2 header.
    const login = (client: string, password: string, username = 'alice') =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(
          {
            method: 'POST',
            path: '/v1/login',
            headers: { host: PUBLIC_HOST, 'content-type': 'application/json' },
            // No agent: this one connection, dialled below.
            createConnection: () => {
              const raw = net.connect({ host: '127.0.0.1', port: api.port, localAddress: LB });
              raw.on('error', () => {});
              raw.write(buildProxyV2({ address: client, port: 50_000 }, { address: '2001:db8::443', port: 443 }));
              return tls.connect({ socket: raw, servername: PUBLIC_HOST, ca: api.gw.ca });
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ username, password }));
      });
    for (let i = 0; i < 5; i++) assert.equal(await login(`2001:db8:5:6::${i + 1}`, 'wrong wrong wrong', `nobody-v6-${i}`), 401);
    assert.equal(await login('2001:db8:5:6:ffff:ffff:ffff:fffe', 'alice password 1'), 429, 'five failures across one /64 ban all of it');
    assert.equal(await login('2001:db8:5:7::1', 'alice password 1'), 200, 'the next /64 is another client');
    const failures = (await audit('authn_login_fail')).map(sourceOf).filter((a) => a?.includes(':'));
    assert.deepEqual(failures.sort(), ['2001:db8:5:6::1', '2001:db8:5:6::2', '2001:db8:5:6::3', '2001:db8:5:6::4', '2001:db8:5:6::5']);
    const ban = (await audit('excess_rate_limit_exceeded')).find((b) => sourceOf(b)?.includes(':'));
    assert.equal(ban && sourceOf(ban), '2001:db8:5:6::5', 'the ban is audited with the address that tipped it');
  });

  it('a direct client (not through HAProxy, no header) is still served as itself', async () => {
    const r = await request(api.gw, 'POST', '/v1/login', { body: { username: 'alice', password: 'alice password 1' }, localAddress: '127.0.0.6' });
    assert.equal(r.status, 200);
    assert.ok((await audit('authn_login_success')).some((i) => sourceOf(i) === '127.0.0.6'));
  });
});
