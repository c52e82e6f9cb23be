import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer, type Server } from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import type { KeyPair } from '../../core/certs/index.js';
import { silentLogger } from '../../lib/log.js';
import { BACKDATE_MS, loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';

/** A free TCP port on 127.0.0.1 (closed again before it is returned, so a tiny race remains). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface PebbleOptions {
  /** Scratch directory for the config and pebble's own TLS material. */
  dir: string;
  /** Where pebble dials for TLS-ALPN-01 (the port the responder under test listens on, 127.0.0.1). */
  tlsPort: number;
  /** Lifetime of issued certificates, seconds (pebble's default is 5 years). */
  certValiditySeconds?: number;
  /** External Account Binding required, with these key ids and base64url HMAC keys. */
  eabKeys?: Record<string, string>;
}

export interface Pebble {
  directoryUrl: string;
  /** PEM of the CA that signed pebble's own HTTPS cert: pass it as tls.acme.caFile. */
  caFile: string;
  caPem: string;
  /** PEM of pebble's issuing root and intermediate (regenerated at every launch). */
  root(): Promise<string>;
  intermediate(): Promise<string>;
  /** Recent pebble output, for assertion messages. */
  output(): string;
  close(): Promise<void>;
}

/**
 * Runs Debian's `pebble` ACME test server on free ports. Its HTTPS cert is made here (Debian
 * strips the upstream test certs) for "localhost" by a throwaway CA. Pebble's VA resolves
 * names with the system resolver, so orders for "localhost" are validated against
 * 127.0.0.1:<tlsPort> via /etc/hosts, with no DNS server to run.
 */
export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const [acmePort, mgmtPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  await mkdir(join(opts.dir, 'pebble-ca'), { mode: 0o700 });
  const ca = await loadOrCreateCa(join(opts.dir, 'pebble-ca'), silentLogger());
  const key = await generateRsaKey(2048);
  const now = Date.now();
  const certPem = signServerCert(ca, {
    hostname: 'localhost',
    publicKeyPem: key.publicKeyPem,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + 86_400_000),
  });
  const caFile = join(opts.dir, 'pebble-ca.pem');
  const certFile = join(opts.dir, 'pebble.crt');
  const keyFile = join(opts.dir, 'pebble.key');
  const configFile = join(opts.dir, 'pebble.json');
  await writeFile(caFile, ca.certPem);
  await writeFile(certFile, certPem);
  await writeFile(keyFile, key.privateKeyPem, { mode: 0o600 });
  await writeFile(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: certFile,
        privateKey: keyFile,
        httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: opts.eabKeys !== undefined,
        ...(opts.eabKeys === undefined ? {} : { externalAccountMACKeys: opts.eabKeys }),
        ...(opts.certValiditySeconds === undefined ? {} : { certificateValidityPeriod: opts.certValiditySeconds }),
      },
    }),
  );
  const child = spawn('pebble', ['-config', configFile, '-strict=false'], {
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const keep = (chunk: Buffer): void => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - 200));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const get = (port: number, path: string): Promise<{ status: number; body: string }> =>
    httpsGet(`https://localhost:${port}${path}`, ca.certPem);
  const pebble: Pebble = {
    directoryUrl: `https://localhost:${acmePort}/dir`,
    caFile,
    caPem: ca.certPem,
    root: async () => (await get(mgmtPort, '/roots/0')).body,
    intermediate: async () => (await get(mgmtPort, '/intermediates/0')).body,
    output: () => lines.join('\n'),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  try {
    await waitUntilUp(child, () => get(acmePort, '/dir'));
  } catch (err) {
    await pebble.close();
    throw new Error(`pebble did not start: ${(err as Error).message}\n${pebble.output()}`, { cause: err });
  }
  return pebble;
}

async function waitUntilUp(child: ChildProcess, probe: () => Promise<{ status: number }>): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with code ${child.exitCode}`);
    try {
      if ((await probe()).status === 200) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A minimal TLS-ALPN-01 responder (what the edge does for ACME): a TCP server, not yet
 * listening, that answers each `acme-tls/1` handshake with the challenge certificate `lookup`
 * has for the name.
 */
export function alpnResponder(lookup: { get(name: string): KeyPair | undefined }): Server {
  const responder = tls.createServer({
    ALPNProtocols: ['acme-tls/1'],
    SNICallback: (name, cb) => {
      const pair = lookup.get(name);
      if (pair) cb(null, tls.createSecureContext({ cert: pair.certPem, key: pair.keyPem }));
      else cb(new Error('no challenge'));
    },
  });
  responder.on('secureConnection', (s: tls.TLSSocket) => s.end());
  responder.on('tlsClientError', () => {});
  return createServer((s) => responder.emit('connection', s));
}
