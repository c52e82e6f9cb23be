import assert from 'node:assert/strict';
import https from 'node:https';
import type net from 'node:net';
import { describe, it } from 'node:test';
import { captureClientHello } from '../helpers/client-hello.js';
import { PUBLIC_HOST, SESSION_DOMAIN, startGateway, startTlsBackend } from '../helpers/gateway.js';
import { closed, rawConnect, tlsConnect, waitFor } from '../helpers/net.js';

/** /health over HTTPS from a chosen loopback source address. */
function healthFrom(port: number, ca: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/health', ca, servername: PUBLIC_HOST, headers: { host: PUBLIC_HOST }, localAddress, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

describe('connection caps', () => {
  it('a flood from one IP hits its per-IP caps while another IP is still served', async () => {
    const gw = await startGateway({ gateway: { maxPendingPerIp: 20, maxConnectionsPerIp: 40, maxTunnelsPerRoute: 1000, clientHelloTimeoutMs: 5000 } });
    const name = `cap.${SESSION_DOMAIN}`;
    const backend = await startTlsBackend(await gw.app.certs.issueSessionCert(name));
    const sockets: net.Socket[] = [];
    try {
      await gw.app.routes.add(name, { host: '127.0.0.1', port: backend.port });
      // 10 established tunnels from the flooding IP…
      for (let i = 0; i < 10; i++) sockets.push(await tlsConnect({ port: gw.port, servername: name, ca: gw.ca, localAddress: '127.0.0.2' }));
      // …then 19 stalled ClientHellos, and the 20th fills its pending cap.
      for (let i = 0; i < 20; i++) {
        const s = await rawConnect(gw.port, { localAddress: '127.0.0.2' });
        s.write(Buffer.from([0x16]));
        sockets.push(s);
      }
      assert.ok(await waitFor(() => gw.app.gateway.metrics().pendingConnections === 20, 2000));
      // Over the pending cap (20) but not the total (40): refused as pending_limit.
      const extra = await rawConnect(gw.port, { localAddress: '127.0.0.2' });
      await closed(extra);
      assert.equal(gw.app.gateway.metrics().rejected.pending_limit, 1, 'the 21st pending connection was refused');
      // With the stalled ones gone, 30 more tunnels bring the IP to its total cap of 40.
      for (const s of sockets.splice(10)) s.destroy();
      assert.ok(await waitFor(() => gw.app.gateway.metrics().activeConnections === 10, 2000));
      for (let i = 0; i < 30; i++) sockets.push(await tlsConnect({ port: gw.port, servername: name, ca: gw.ca, localAddress: '127.0.0.2' }));
      const over = await rawConnect(gw.port, { localAddress: '127.0.0.2' });
      await closed(over);
      assert.equal(gw.app.gateway.metrics().rejected.per_ip_limit, 1, 'the 41st connection from the flooding IP is refused');

      // Meanwhile another client is unaffected.
      assert.equal(await healthFrom(gw.port, gw.ca, '127.0.0.3'), 200);
      const other = await tlsConnect({ port: gw.port, servername: name, ca: gw.ca, localAddress: '127.0.0.3' });
      other.destroy();
    } finally {
      for (const s of sockets) s.destroy();
      await backend.close();
      await gw.close();
    }
  });

  it('the total cap refuses connections beyond it and frees up as they close', async () => {
    const gw = await startGateway({ gateway: { maxConnections: 10, clientHelloTimeoutMs: 5000 } });
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 10; i++) sockets.push(await rawConnect(gw.port, { localAddress: `127.0.1.${i + 1}` }));
      await waitFor(() => gw.app.gateway.metrics().activeConnections === 10, 2000);
      const over = await rawConnect(gw.port, { localAddress: '127.0.2.1' });
      await closed(over);
      assert.equal(gw.app.gateway.metrics().rejected.capacity, 1);
      for (const s of sockets.splice(0)) s.destroy();
      assert.ok(await waitFor(() => gw.app.gateway.metrics().activeConnections === 0, 2000));
      assert.equal(await healthFrom(gw.port, gw.ca, '127.0.2.2'), 200, 'served again once below the cap');
    } finally {
      for (const s of sockets) s.destroy();
      await gw.close();
    }
  });

  it('counts a connection that closes before finishing its ClientHello as closed_early, not as routed', async () => {
    const gw = await startGateway();
    try {
      const hello = await captureClientHello({ servername: `x.${SESSION_DOMAIN}` });
      const s = await rawConnect(gw.port);
      s.end(hello.subarray(0, 10));
      await closed(s);
      assert.ok(await waitFor(() => gw.app.gateway.metrics().rejected.closed_early === 1, 1000));
      assert.equal(gw.app.gateway.metrics().routed, 0);
    } finally {
      await gw.close();
    }
  });
});
