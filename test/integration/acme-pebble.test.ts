import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { tlsSchema } from '../../core/config/schema.js';
import { silentLogger } from '../../lib/log.js';
import { MemoryChallengeStore } from '../../core/certs/acme-challenges.js';
import { AcmeSource } from '../../core/certs/acme-source.js';
import { setupCertificates, type KeyPair } from '../../core/certs/index.js';
import { startGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/net.js';
import { alpnResponder, freePort, startPebble, type Pebble } from '../helpers/pebble.js';
import { scratchDirs } from '../helpers/tmp.js';

// Pebble's VA resolves names with the system resolver: "localhost" is 127.0.0.1 via /etc/hosts.
const HOST = 'localhost';
const tempDir = scratchDirs('hs-acme-');

const leafOf = (pair: KeyPair): X509Certificate => new X509Certificate(pair.certPem);
const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

/** Checks that `leaf` chains to pebble's intermediate (issuer name and signature) and names HOST. */
async function assertIssuedByPebble(leaf: X509Certificate, pebble: Pebble): Promise<void> {
  const intermediate = new X509Certificate(await pebble.intermediate());
  assert.ok(leaf.checkIssued(intermediate), `issuer ${leaf.issuer} is not pebble's intermediate ${intermediate.subject}`);
  assert.ok(leaf.verify(intermediate.publicKey), "signature does not verify with pebble's intermediate");
  assert.equal(leaf.subjectAltName, `DNS:${HOST}`);
}

/** An HTTP/1.1 keep-alive request on an open TLS connection; resolves with the raw response. */
async function get(socket: tls.TLSSocket, path: string): Promise<string> {
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
  let text = '';
  while (!/\r\n\r\n[\s\S]*\}$/.test(text)) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    text += chunk.toString();
  }
  return text;
}

async function connectVerified(port: number, ca: string): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: HOST, ca });
  await once(socket, 'secureConnect');
  return socket;
}

describe('ACME TLS-ALPN-01 against pebble', () => {
  it('serves the CA-issued fallback while no ACME certificate exists', async () => {
    const dataDir = tempDir();
    const certs = await setupCertificates({
      dataDir,
      publicHost: HOST,
      tls: tlsSchema.parse({ mode: 'acme', acme: { directoryUrl: 'https://127.0.0.1:9/dir' } }),
      logger: silentLogger(),
    });
    try {
      const served = leafOf(certs.api.current());
      assert.ok(served.verify(new X509Certificate(certs.ca.certPem).publicKey), 'signed by the HackStream CA');
      assert.equal(served.subjectAltName, `DNS:${HOST}`);
      assert.equal(await modeOf(join(dataDir, 'certs', 'acme')), 0o700);
      assert.equal(certs.acmeChallenges.get(HOST), undefined);
    } finally {
      await certs.close();
    }
  });

  it('obtains the API cert through the real gateway, renews it, and keeps open connections', { timeout: 45_000 }, async () => {
    const dir = tempDir();
    const port = await freePort();
    const pebble = await startPebble({ dir, tlsPort: port, certValiditySeconds: 15 });
    const dataDir = join(dir, 'data');
    const gw = await startGateway(
      {
        publicHost: HOST,
        listen: `127.0.0.1:${port}`,
        gateway: { httpKeepAliveTimeoutMs: 60_000 },
        tls: { mode: 'acme', acme: { directoryUrl: pebble.directoryUrl, caFile: pebble.caFile } },
      },
      { dataDir },
    );
    try {
      const hackstreamCa = new X509Certificate(gw.ca);
      const fromPebble = (): boolean => !leafOf(gw.app.certs.api.current()).checkIssued(hackstreamCa);
      assert.ok(await waitFor(fromPebble, 15_000), `no ACME certificate; pebble says:\n${pebble.output()}`);
      const pebbleRoot = await pebble.root();

      const first = await connectVerified(port, pebbleRoot);
      const firstLeaf = new X509Certificate(first.getPeerCertificate().raw);
      await assertIssuedByPebble(firstLeaf, pebble);
      assert.match(await get(first, '/health'), /^HTTP\/1\.1 200[\s\S]*"status":"ok"/);

      // 15 s certificates are renewed when a third of their lifetime remains.
      const renewed = await waitFor(() => leafOf(gw.app.certs.api.current()).serialNumber !== firstLeaf.serialNumber, 20_000, 100);
      assert.ok(renewed, `no renewal; pebble says:\n${pebble.output()}`);
      const second = await connectVerified(port, pebbleRoot);
      const secondLeaf = new X509Certificate(second.getPeerCertificate().raw);
      assert.notEqual(secondLeaf.serialNumber, firstLeaf.serialNumber, 'a new connection gets the renewed cert');
      await assertIssuedByPebble(secondLeaf, pebble);

      assert.match(await get(first, '/health'), /^HTTP\/1\.1 200/, 'the connection opened before the renewal still works');
      assert.equal(first.getPeerCertificate().serialNumber, firstLeaf.serialNumber);
      first.destroy();
      second.destroy();
    } finally {
      await gw.close();
      await pebble.close();
    }

    const certsDir = join(dataDir, 'certs');
    assert.equal(await modeOf(join(certsDir, 'acme')), 0o700);
    assert.equal(await modeOf(join(certsDir, 'acme', 'account.key')), 0o600);
    assert.equal(await modeOf(join(certsDir, 'acme', 'api.key')), 0o600);
    const servedLast = leafOf(gw.app.certs.api.current()).serialNumber;
    const restarted = await setupCertificates({
      dataDir,
      publicHost: HOST,
      tls: tlsSchema.parse({ mode: 'acme', acme: { directoryUrl: pebble.directoryUrl } }),
      logger: silentLogger(),
    });
    assert.equal(leafOf(restarted.api.current()).serialNumber, servedLast, 'the stored ACME cert is served after a restart');
    await restarted.close();
  });

  it('retries a failed order with backoff and succeeds once the challenge can be answered', { timeout: 30_000 }, async () => {
    const dir = tempDir();
    const port = await freePort();
    const pebble = await startPebble({ dir, tlsPort: port });
    const challenges = new MemoryChallengeStore();
    const fallbackPair = { certPem: 'fallback', keyPem: 'fallback' };
    const failures: number[] = [];
    const logger = silentLogger();
    const source = await AcmeSource.open({
      certsDir: dir,
      publicHost: HOST,
      acme: { directoryUrl: pebble.directoryUrl, caFile: pebble.caFile, renewBeforeDays: 30 },
      fallback: { current: () => fallbackPair, onChange: () => () => {}, close: async () => {}, start: () => {} },
      challenges,
      logger: Object.assign(Object.create(logger) as typeof logger, {
        error: (obj: { retryInMs?: number }, msg: string) => {
          if (msg === 'ACME order failed' && obj.retryInMs !== undefined) failures.push(obj.retryInMs);
        },
      }),
      retryMinMs: 500,
      retryMaxMs: 2_000,
    });
    // A minimal TLS-ALPN-01 responder, started only after the first attempt has failed.
    const front = alpnResponder(challenges);
    try {
      assert.deepEqual(source.current(), fallbackPair);
      const changed = new Promise<KeyPair>((resolve) => source.onChange(resolve));
      source.start();
      assert.ok(await waitFor(() => failures.length > 0, 15_000), `first attempt did not fail; pebble says:\n${pebble.output()}`);
      const firstDelay = failures[0] ?? 0;
      assert.ok(firstDelay >= 400 && firstDelay <= 600, `first retry in ${firstDelay} ms`);
      front.listen(port, '127.0.0.1');
      await once(front, 'listening');
      const pair = await changed;
      await assertIssuedByPebble(leafOf(pair), pebble);
      assert.deepEqual(source.current(), pair);
      assert.equal(challenges.get(HOST), undefined, 'the challenge cert is removed after the order');
    } finally {
      await source.close();
      front.close();
      await pebble.close();
    }
  });
});
