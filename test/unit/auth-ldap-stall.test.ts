import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { optionsSchema } from '../../plugins/auth-ldap/options.js';
import { createLdapProvider } from '../../plugins/auth-ldap/provider.js';
import { silentLogger } from '../../lib/log.js';
import { portOf, waitFor } from '../helpers/net.js';

/*
 * A stall slapd cannot be made to do: the server agrees to StartTLS, then never starts the
 * TLS handshake. ldapts has no timeout for that step; the plugin's deadline must end it and
 * drop the socket. The server answers the StartTLS request (a BER ExtendedResponse, success)
 * and nothing else.
 */

/** LDAPMessage { messageID, ExtendedResponse { success, "", "" } } for a short-form message id. */
function startTlsOk(request: Buffer): Buffer {
  // 30 len 02 01 <id>: the test client's first ids fit one byte.
  const id = request[4] ?? 1;
  return Buffer.from([0x30, 0x0c, 0x02, 0x01, id, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00]);
}

describe('auth-ldap against a server that stalls', () => {
  let server: net.Server;
  const peers = new Set<net.Socket>();
  before(async () => {
    server = net.createServer((s) => {
      peers.add(s);
      s.on('error', () => {});
      s.once('data', (req: Buffer) => s.write(startTlsOk(req)));
      s.on('close', () => peers.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    for (const s of peers) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('agreeing to StartTLS and then silent: denied at the deadline, the socket dropped', async () => {
    const options = optionsSchema.parse({ url: `ldap://127.0.0.1:${portOf(server)}`, startTls: true, connectTimeoutMs: 200, timeoutMs: 300 });
    const provider = createLdapProvider({ options, ca: undefined, bindPassword: undefined, logger: silentLogger() });
    const t0 = Date.now();
    const answer = await provider.authenticate({ username: 'alice', password: 'pw-1', ip: '127.0.0.1' });
    const ms = Date.now() - t0;
    assert.deepEqual(answer, { result: 'deny', reason: 'directory-unavailable' });
    assert.ok(ms >= 450 && ms < 1_500, `denied after ${ms} ms (budget 500)`);
    assert.ok(await waitFor(() => peers.size === 0, 2_000), 'the server saw the connection closed');
  });

  it('closing the plugin ends an attempt in flight', async () => {
    const options = optionsSchema.parse({ url: `ldap://127.0.0.1:${portOf(server)}`, startTls: true, connectTimeoutMs: 5_000, timeoutMs: 5_000 });
    const provider = createLdapProvider({ options, ca: undefined, bindPassword: undefined, logger: silentLogger() });
    const pending = provider.authenticate({ username: 'alice', password: 'pw-1', ip: '127.0.0.1' });
    assert.ok(await waitFor(() => peers.size === 1, 2_000), 'connected');
    const t0 = Date.now();
    provider.closeAll();
    assert.deepEqual(await pending, { result: 'deny', reason: 'directory-unavailable' });
    assert.ok(Date.now() - t0 < 1_000, 'not at the 10 s deadline');
    assert.ok(await waitFor(() => peers.size === 0, 2_000), 'the server saw the connection closed');
    assert.deepEqual(await provider.authenticate({ username: 'alice', password: 'pw-1', ip: '127.0.0.1' }), { result: 'deny', reason: 'shutting-down' });
    assert.equal(peers.size, 0, 'no connection after close');
  });
});
