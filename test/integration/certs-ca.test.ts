import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { tlsSchema } from '../../core/config/schema.js';
import { silentLogger } from '../../lib/log.js';
import { BACKDATE_MS, loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { setupCertificates, type Certificates, type KeyPair } from '../../core/certs/index.js';
import { generateRsaKey } from '../../core/certs/keys.js';

const HOST = 'hackstream.test';
const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'hs-certs-'));
  dirs.push(dir);
  return dir;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const setup = (dataDir: string, publicHost = HOST, tlsInput: object = {}): Promise<Certificates> =>
  setupCertificates({ dataDir, publicHost, tls: tlsSchema.parse(tlsInput), logger: silentLogger() });

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;
const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

/** A real TLS handshake: a server presenting `pair`, a client verifying with `ca` and default identity checks. */
async function handshake(pair: KeyPair, servername: string, ca: string): Promise<X509Certificate> {
  const server = tls.createServer({ cert: pair.certPem, key: pair.keyPem }, (s) => s.end('hello'));
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca });
    try {
      await once(socket, 'secureConnect');
      const [data] = (await once(socket, 'data')) as [Buffer];
      assert.equal(data.toString(), 'hello');
      return new X509Certificate(socket.getPeerCertificate().raw);
    } finally {
      socket.destroy();
    }
  } finally {
    server.close();
  }
}

describe('HackStream CA and API certificate', () => {
  it('creates the CA and API cert with 0600 keys in a 0700 folder, reuses them, renews for a new public host', async () => {
    const dataDir = tempDir();
    const first = await setup(dataDir);
    const certs = join(dataDir, 'certs');
    assert.equal(await modeOf(certs), 0o700);
    assert.equal(await modeOf(join(certs, 'ca.key')), 0o600);
    assert.equal(await modeOf(join(certs, 'api.key')), 0o600);
    assert.equal(await readFile(join(certs, 'ca.crt'), 'utf8'), first.ca.certPem);
    const ca = new X509Certificate(first.ca.certPem);
    assert.ok(ca.ca, 'ca.crt is a CA certificate');
    assert.equal(ca.publicKey.asymmetricKeyDetails?.modulusLength, 3072);
    const api = first.api.current();
    const served = await handshake(api, HOST, first.ca.certPem);
    assert.equal(served.serialNumber, serialOf(api.certPem));
    await first.close();

    const second = await setup(dataDir);
    assert.equal(serialOf(second.ca.certPem), ca.serialNumber, 'same CA on the second start');
    assert.equal(serialOf(second.api.current().certPem), served.serialNumber, 'same API cert on the second start');
    await second.close();

    const moved = await setup(dataDir, 'api.hackstream.test');
    assert.equal(serialOf(moved.ca.certPem), ca.serialNumber, 'the CA survives a public host change');
    const renewed = moved.api.current();
    assert.notEqual(serialOf(renewed.certPem), served.serialNumber);
    assert.equal(new X509Certificate(renewed.certPem).subjectAltName, 'DNS:api.hackstream.test');
    await handshake(renewed, 'api.hackstream.test', moved.ca.certPem);
    const written = await readFile(join(certs, 'api.crt'), 'utf8');
    assert.equal(`${written.trimEnd()}\n${moved.ca.certPem}`, renewed.certPem, 'the renewed cert is written back, and served followed by the CA');
    await moved.close();
  });

  it('re-issues an API cert that is near expiry, or whose key does not match', async () => {
    const dataDir = tempDir();
    const certsDir = join(dataDir, 'certs');
    await (await setup(dataDir)).close();
    const ca = await loadOrCreateCa(certsDir, silentLogger());
    const key = await generateRsaKey(2048);
    const now = Date.now();
    const expiring = signServerCert(ca, {
      hostname: HOST,
      publicKeyPem: key.publicKeyPem,
      notBefore: new Date(now - 300 * 86_400_000),
      notAfter: new Date(now + 10 * 86_400_000),
    });
    await writeFile(join(certsDir, 'api.crt'), expiring);
    await writeFile(join(certsDir, 'api.key'), key.privateKeyPem);
    const renewed = await setup(dataDir);
    const cert = new X509Certificate(renewed.api.current().certPem);
    assert.notEqual(cert.serialNumber, serialOf(expiring));
    assert.ok(new Date(cert.validTo).getTime() > now + 300 * 86_400_000);
    await renewed.close();

    await writeFile(join(certsDir, 'api.key'), (await generateRsaKey(2048)).privateKeyPem);
    const rekeyed = await setup(dataDir);
    assert.notEqual(serialOf(rekeyed.api.current().certPem), cert.serialNumber);
    await handshake(rekeyed.api.current(), HOST, rekeyed.ca.certPem);
    await rekeyed.close();
  });

  it('refuses to replace half of an existing CA', async () => {
    const dataDir = tempDir();
    await (await setup(dataDir)).close();
    await rm(join(dataDir, 'certs', 'ca.key'));
    await assert.rejects(setup(dataDir), (err: Error) => {
      assert.match(err.message, new RegExp(`${join(dataDir, 'certs', 'ca.key')} is missing`));
      return true;
    });
  });
});

describe('session certificates', () => {
  const ttlHours = 6;
  let certs: Certificates;
  const ready = (async () => {
    certs = await setup(tempDir(), HOST, { sessionCertTtlHours: ttlHours });
  })();
  after(async () => {
    await ready;
    await certs.close();
  });

  it('verify against the CA in a real handshake for their hostname', async () => {
    await ready;
    const host = 's-4f2a.sessions.test';
    const before = Date.now();
    const issued = await certs.issueSessionCert(host);
    const issuedAt = Date.now();
    const cert = await handshake(issued, host, certs.ca.certPem);
    assert.equal(cert.subjectAltName, `DNS:${host}`);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth only');
    assert.equal(cert.ca, false);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.ok(cert.verify(new X509Certificate(certs.ca.certPem).publicKey));
    assert.equal(new Date(cert.validTo).getTime(), issued.expiresAt.getTime());
    const lifetime = issued.expiresAt.getTime() - before;
    assert.ok(Math.abs(lifetime - ttlHours * 3_600_000) < 5_000, `lifetime ${lifetime} ms`);
    // Backdated by BACKDATE_MS from the moment of issue (X.509 times are whole seconds).
    const from = new Date(cert.validFrom).getTime();
    assert.ok(from >= before - BACKDATE_MS - 1_000 && from <= issuedAt - BACKDATE_MS, `validFrom ${from - before} ms from the start`);
    assert.ok(Buffer.from(cert.serialNumber, 'hex').length >= 15, 'random 128-bit serial');
  });

  it('fail the handshake for another hostname', async () => {
    await ready;
    const issued = await certs.issueSessionCert('s-1.sessions.test');
    await assert.rejects(handshake(issued, 's-2.sessions.test', certs.ca.certPem), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('are unique per issue (serial and key)', async () => {
    await ready;
    const [a, b] = await Promise.all([certs.issueSessionCert('s-3.sessions.test'), certs.issueSessionCert('s-3.sessions.test')]);
    assert.notEqual(serialOf(a.certPem), serialOf(b.certPem));
    assert.notEqual(a.keyPem, b.keyPem);
  });

  for (const [description, name] of [
    ['uppercase', 'S1.sessions.test'],
    ['a trailing dot', 's1.sessions.test.'],
    ['a wildcard', '*.sessions.test'],
    ['an IP address', '127.0.0.1'],
    ['an underscore', 's_1.sessions.test'],
    ['an overlong name', `${'a.'.repeat(127)}test`],
    ['an empty name', ''],
  ]) {
    it(`refuse ${description}`, async () => {
      await ready;
      await assert.rejects(certs.issueSessionCert(name ?? ''), /session hostname .* is not a hostname/);
    });
  }
});
