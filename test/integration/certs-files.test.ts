import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { after, describe, it } from 'node:test';
import { tlsSchema } from '../../core/config/schema.js';
import { createLogger, silentLogger, type Logger } from '../../lib/log.js';
import { BACKDATE_MS, loadOrCreateCa, signServerCert, type Ca } from '../../core/certs/ca.js';
import { setupCertificates, type Certificates, type KeyPair } from '../../core/certs/index.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { scratchDirs } from '../helpers/tmp.js';

const HOST = 'hackstream.test';
const tempDir = scratchDirs('hs-certs-files-');

/** The operator's own CA (as if from their PKI), made at test time. */
const operatorCa: Promise<Ca> = (async () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'ca'), { mode: 0o700 });
  return loadOrCreateCa(join(dir, 'ca'), silentLogger());
})();

async function operatorPair(validity: { from?: number; to?: number } = {}): Promise<KeyPair> {
  const ca = await operatorCa;
  const key = await generateRsaKey(2048);
  const now = Date.now();
  const certPem = signServerCert(ca, {
    hostname: HOST,
    publicKeyPem: key.publicKeyPem,
    notBefore: new Date(validity.from ?? now - BACKDATE_MS),
    notAfter: new Date(validity.to ?? now + 86_400_000),
  });
  return { certPem, keyPem: key.privateKeyPem };
}

interface LogLine {
  msg: string;
  [field: string]: unknown;
}

/** A logger whose lines the test can wait for. */
function capturingLogger(): { logger: Logger; lines: LogLine[]; waitFor(msg: string, ms?: number): Promise<LogLine> } {
  const lines: LogLine[] = [];
  const waiters: Array<() => void> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      waiters.splice(0).forEach((w) => w());
      done();
    },
  });
  const waitFor = async (msg: string, ms = 10_000): Promise<LogLine> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = lines.find((l) => l.msg === msg);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no log line "${msg}" within ${ms} ms`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };
  return { logger: createLogger({ level: 'debug', destination }), lines, waitFor };
}

interface Operator {
  certs: Certificates;
  certFile: string;
  keyFile: string;
  write(pair: Partial<KeyPair>): Promise<void>;
  nextChange(ms?: number): Promise<KeyPair>;
}

async function filesMode(initial: KeyPair, logger: Logger = silentLogger()): Promise<Operator> {
  const dir = tempDir();
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const write = async (pair: Partial<KeyPair>): Promise<void> => {
    if (pair.certPem !== undefined) await writeFile(certFile, pair.certPem);
    if (pair.keyPem !== undefined) await writeFile(keyFile, pair.keyPem, { mode: 0o600 });
  };
  await write(initial);
  const certs = await setupCertificates({
    dataDir: join(dir, 'data'),
    publicHost: HOST,
    tls: tlsSchema.parse({ mode: 'files', certFile, keyFile }),
    logger,
  });
  const nextChange = (ms = 10_000): Promise<KeyPair> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no certificate change within ${ms} ms`));
      }, ms);
      const off = certs.api.onChange((pair) => {
        clearTimeout(timer);
        off();
        resolve(pair);
      });
    });
  return { certs, certFile, keyFile, write, nextChange };
}

/** What the gateway does: a TLS server that installs each new pair with setSecureContext. */
async function echoServer(source: Certificates['api']): Promise<{ port: number; close(): void }> {
  const pair = source.current();
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: pair.certPem, key: pair.keyPem }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.pipe(s);
  });
  server.on('tlsClientError', () => {});
  const off = source.onChange((p) => server.setSecureContext({ cert: p.certPem, key: p.keyPem }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      off();
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

async function connect(port: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: HOST, ca: (await operatorCa).certPem });
  await once(socket, 'secureConnect');
  return socket;
}

async function roundTrip(socket: tls.TLSSocket, text: string): Promise<string> {
  socket.write(text);
  const [data] = (await once(socket, 'data')) as [Buffer];
  return data.toString();
}

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;
const peerSerial = (socket: tls.TLSSocket): string => socket.getPeerCertificate().serialNumber;

describe('operator certificate files (tls.mode "files")', () => {
  it('swaps to a new pair for new connections while an open connection keeps working', async () => {
    const [a, b] = await Promise.all([operatorPair(), operatorPair()]);
    const op = await filesMode(a);
    const server = await echoServer(op.certs.api);
    try {
      const first = await connect(server.port);
      assert.equal(peerSerial(first), serialOf(a.certPem));
      assert.equal(await roundTrip(first, 'before'), 'before');

      const changed = op.nextChange();
      await op.write(b);
      assert.equal(serialOf((await changed).certPem), serialOf(b.certPem));

      const second = await connect(server.port);
      assert.equal(peerSerial(second), serialOf(b.certPem), 'a new connection sees the new cert');
      assert.equal(await roundTrip(second, 'new'), 'new');
      assert.equal(await roundTrip(first, 'after the swap'), 'after the swap', 'the open connection still carries data both ways');
      assert.equal(peerSerial(first), serialOf(a.certPem));
      first.destroy();
      second.destroy();
    } finally {
      server.close();
      await op.certs.close();
    }
  });

  it('ignores a half-written pair (new cert, old key) and takes the pair once the key follows', async () => {
    const [a, c] = await Promise.all([operatorPair(), operatorPair()]);
    const log = capturingLogger();
    const op = await filesMode(a, log.logger);
    const server = await echoServer(op.certs.api);
    try {
      await op.write({ certPem: c.certPem });
      const ignored = await log.waitFor('certificate files changed but do not form a valid pair; keeping the current one');
      assert.match(String(ignored['reason']), /key does not match certificate/);
      assert.equal(serialOf(op.certs.api.current().certPem), serialOf(a.certPem));
      const during = await connect(server.port);
      assert.equal(peerSerial(during), serialOf(a.certPem), 'still the old pair');
      during.destroy();

      const changed = op.nextChange();
      await op.write({ keyPem: c.keyPem });
      assert.equal(serialOf((await changed).certPem), serialOf(c.certPem));
      const after = await connect(server.port);
      assert.equal(peerSerial(after), serialOf(c.certPem));
      after.destroy();
      assert.ok(!log.lines.some((l) => JSON.stringify(l).includes('PRIVATE KEY')), 'no key material in the logs');
    } finally {
      server.close();
      await op.certs.close();
    }
  });

  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const cases: Array<[string, (a: KeyPair, other: KeyPair, expired: KeyPair) => Partial<KeyPair> | 'no cert file', (cert: string, key: string) => RegExp]> = [
    ['a missing cert file', () => 'no cert file', (cert) => new RegExp(`^tls\\.certFile ${esc(cert)}: cannot read it \\(ENOENT\\)`)],
    ['a cert file without a certificate', () => ({ certPem: 'hello\n' }), (cert) => new RegExp(`^tls\\.certFile ${esc(cert)}: no PEM certificate found`)],
    ['a corrupt certificate', (a) => ({ certPem: a.certPem.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA') }), (cert) => new RegExp(`^tls\\.certFile ${esc(cert)}: certificate does not parse`)],
    ['a key file without a key', () => ({ keyPem: 'not a key\n' }), (_c, key) => new RegExp(`^tls\\.keyFile ${esc(key)}: no PEM private key found`)],
    ['a key of another certificate', (_a, other) => ({ keyPem: other.keyPem }), (cert, key) => new RegExp(`^tls\\.certFile ${esc(cert)}: key does not match certificate \\(tls\\.keyFile ${esc(key)}\\)`)],
    ['an expired certificate', (_a, _o, expired) => expired, (cert) => new RegExp(`^tls\\.certFile ${esc(cert)}: certificate expired on \\d{4}-`)],
  ];
  for (const [description, breakIt, expected] of cases) {
    it(`refuses to start with ${description}, naming the file`, async () => {
      const now = Date.now();
      const [a, other, expired] = await Promise.all([operatorPair(), operatorPair(), operatorPair({ from: now - 10 * 86_400_000, to: now - 86_400_000 })]);
      const dir = tempDir();
      const certFile = join(dir, 'tls.crt');
      const keyFile = join(dir, 'tls.key');
      const broken = breakIt(a, other, expired);
      if (broken !== 'no cert file') await writeFile(certFile, broken.certPem ?? a.certPem);
      await writeFile(keyFile, broken === 'no cert file' ? a.keyPem : (broken.keyPem ?? a.keyPem));
      await assert.rejects(
        setupCertificates({ dataDir: join(dir, 'data'), publicHost: HOST, tls: tlsSchema.parse({ mode: 'files', certFile, keyFile }), logger: silentLogger() }),
        (err: Error) => {
          assert.match(err.message, expected(certFile, keyFile));
          return true;
        },
      );
    });
  }
});
