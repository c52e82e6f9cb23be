import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { CliError, EXIT } from '../../client/errors.js';
import { pinnedRequest } from '../../client/http.js';
import { isTransient } from '../../client/reconnect.js';
import { loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { silentLogger } from '../../lib/log.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * A server that took the request and then went silent (a network that died mid-request): the
 * request ends after the caller's timeout as an unreachable server, which re-attaching waits out.
 */
const scratch = scratchDirs('hs-cli-timeout-');
const HOST = 'hackstream.test';
let server: tls.Server;
let port: number;
let pin: string;
let requests = 0;
const open = new Set<tls.TLSSocket>();

before(async () => {
  const ca = await loadOrCreateCa(scratch(), silentLogger());
  const key = await generateRsaKey(2048);
  const cert = signServerCert(ca, { hostname: HOST, publicKeyPem: key.publicKeyPem, notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 86_400_000) });
  pin = new X509Certificate(ca.certPem).fingerprint256;
  server = tls.createServer({ key: key.privateKeyPem, cert: `${cert}${ca.certPem}` }, (s) => {
    open.add(s);
    s.once('data', () => requests++); // read, never answered
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

after(() => {
  for (const s of open) s.destroy();
  return new Promise<void>((r) => server.close(() => r()));
});

describe('pinnedRequest timeout', () => {
  it('a request left unanswered ends after timeoutMs as UNREACHABLE (timed out), a transient failure', { timeout: 30_000 }, async () => {
    const endpoint = { url: new URL(`https://${HOST}:${port}`), address: '127.0.0.1' };
    const err = await pinnedRequest(endpoint, pin, 'GET', '/v1/sessions/x', undefined, undefined, 300).then(
      () => assert.fail('answered'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof CliError, String(err));
    assert.equal(err.exitCode, EXIT.UNREACHABLE);
    assert.match(err.message, /dropped the request: (timed out|ETIMEDOUT)/);
    assert.equal(isTransient(err), true);
    assert.equal(requests, 1, 'the request reached the server');
  });
});
