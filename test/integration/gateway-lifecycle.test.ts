import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import { BACKDATE_MS, loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { request } from '../helpers/api.js';
import { httpsRequest, PUBLIC_HOST, SESSION_DOMAIN, startGateway, startTlsBackend } from '../helpers/gateway.js';
import { closed, rawConnect, sleep, tlsConnect, waitFor } from '../helpers/net.js';

const root = mkdtempSync(join(tmpdir(), 'hs-life-'));
after(() => rmSync(root, { recursive: true, force: true }));

async function echo(s: tls.TLSSocket, text: string): Promise<string> {
  s.write(text);
  const [d] = (await once(s, 'data')) as [Buffer];
  return d.toString();
}

/** One HTTP/1.1 request on an already open TLS connection (keep-alive). */
async function requestOn(s: tls.TLSSocket): Promise<string> {
  s.write(`GET /health HTTP/1.1\r\nHost: ${PUBLIC_HOST}\r\n\r\n`);
  let text = '';
  while (!text.includes('"status":"ok"')) {
    const [d] = (await once(s, 'data')) as [Buffer];
    text += d.toString();
  }
  return text;
}

describe('operator certificate replaced while connections are open', () => {
  it('serves the new cert to new connections; open tunnels and API connections keep working', async () => {
    mkdirSync(join(root, 'op-ca'), { mode: 0o700 });
    const opCa = await loadOrCreateCa(join(root, 'op-ca'), silentLogger());
    const certFile = join(root, 'api.crt');
    const keyFile = join(root, 'api.key');
    const writePair = async () => {
      const key = await generateRsaKey(2048);
      const now = Date.now();
      const cert = signServerCert(opCa, { hostname: PUBLIC_HOST, publicKeyPem: key.publicKeyPem, notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + 86_400_000) });
      writeFileSync(keyFile, key.privateKeyPem, { mode: 0o600 });
      writeFileSync(certFile, cert);
    };
    await writePair();
    const gw = await startGateway({ tls: { mode: 'files', certFile, keyFile } });
    const name = `reload.${SESSION_DOMAIN}`;
    const backend = await startTlsBackend(await gw.app.certs.issueSessionCert(name));
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const tunnel = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca });
      const api = await tlsConnect({ port: gw.port, servername: PUBLIC_HOST, ca: opCa.certPem });
      const oldSerial = api.getPeerCertificate().serialNumber;
      assert.match(await requestOn(api), /^HTTP\/1\.1 200/);

      await writePair();
      const serialNow = async () => {
        const s = await tlsConnect({ port: gw.port, servername: PUBLIC_HOST, ca: opCa.certPem });
        const serial = s.getPeerCertificate().serialNumber;
        s.destroy();
        return serial;
      };
      assert.ok(await waitFor(async () => (await serialNow()) !== oldSerial, 10_000, 200), 'new connections get the new cert without a restart');

      assert.match(await requestOn(api), /^HTTP\/1\.1 200/, 'the API connection opened before the swap still works');
      assert.equal(api.getPeerCertificate().serialNumber, oldSerial);
      assert.equal(await echo(tunnel, 'still here'), 'still here', 'the tunnel opened before the swap still works');
      tunnel.destroy();
      api.destroy();
    } finally {
      await backend.close();
      await gw.close();
    }
  });
});

describe('graceful shutdown', () => {
  it('stops accepting at once, lets tunnels drain up to the timeout, then closes them', async () => {
    const gw = await startGateway({ gateway: { shutdownDrainMs: 1500 } });
    const name = `drain.${SESSION_DOMAIN}`;
    const backend = await startTlsBackend(await gw.app.certs.issueSessionCert(name));
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const tunnel = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca });
      const peeking = await rawConnect(gw.port);
      peeking.write(Buffer.from([0x16, 0x03]));
      await waitFor(() => gw.app.gateway.metrics().pendingConnections === 1, 1000);
      const peekClosed = closed(peeking);
      const t0 = Date.now();
      const closing = gw.app.gateway.close();
      await peekClosed;
      assert.ok(Date.now() - t0 < 500, 'a connection still in its ClientHello is closed at once');
      assert.equal(gw.app.gateway.metrics().rejected.shutting_down, 1);
      await sleep(100);
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect(gw.port, '127.0.0.1');
        s.on('connect', () => resolve('connected'));
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
      assert.equal(refused, 'ECONNREFUSED', 'no new connections once shutdown began');
      assert.equal(await echo(tunnel, 'draining'), 'draining', 'the open tunnel still carries data during the drain');
      await closing;
      const ms = Date.now() - t0;
      assert.ok(ms >= 1400 && ms < 3000, `close took ${ms} ms with a 1500 ms drain`);
      await closed(tunnel);
    } finally {
      await backend.close();
      await gw.close();
    }
  });

  it('finishes as soon as the last tunnel ends by itself', async () => {
    const gw = await startGateway({ gateway: { shutdownDrainMs: 10_000 } });
    const name = `quick.${SESSION_DOMAIN}`;
    const backend = await startTlsBackend(await gw.app.certs.issueSessionCert(name));
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: backend.port });
      const tunnel = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca });
      const keepAlive = await tlsConnect({ port: gw.port, servername: PUBLIC_HOST, ca: gw.ca });
      await requestOn(keepAlive);
      const t0 = Date.now();
      const closing = gw.app.gateway.close();
      setTimeout(() => tunnel.end(), 300);
      await closing;
      const ms = Date.now() - t0;
      assert.ok(ms < 2000, `close took ${ms} ms though the tunnel ended after 300 ms`);
      await closed(keepAlive);
    } finally {
      await backend.close();
      await gw.close();
    }
  });
});

describe('metrics', () => {
  it('/v1/metrics renders the gateway counters in the Prometheus format (for admins)', async () => {
    const admin = { username: 'metrics-admin', password: 'metrics admin password' };
    const gw = await startGateway({}, { app: { bootstrap: admin } });
    try {
      await assert.rejects(tlsConnect({ port: gw.port, servername: `nobody.${SESSION_DOMAIN}`, ca: gw.ca }));
      const login = await request(gw, 'POST', '/v1/login', { body: admin });
      const { access_token: accessToken } = login.json as { access_token: string };
      const r = await httpsRequest(gw.port, gw.ca, '/v1/metrics', { headers: { authorization: `Bearer ${accessToken}` } });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/plain/);
      assert.match(r.body, /^hackstream_gateway_rejected_total\{reason="unknown_sni"\} 1$/m);
      assert.match(r.body, /^hackstream_gateway_terminated_total [1-9]\d*$/m);
      assert.match(r.body, /^hackstream_gateway_accepted_total [2-9]\d*$/m);
    } finally {
      await gw.close();
    }
  });
});
