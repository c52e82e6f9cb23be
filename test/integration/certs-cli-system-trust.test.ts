import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EXIT } from '../../client/errors.js';
import { ADMIN, startApi, type TestApi } from '../helpers/api.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { waitFor } from '../helpers/net.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * tls.mode "files" with a chain from a CA in the system trust store: the CLI trusts the
 * store, not the intermediate the server presented at configure, so a renewal with a new
 * intermediate does not break it. NODE_EXTRA_CA_CERTS stands in for the system store (the
 * CLI reads it with Node's bundle and /etc/ssl/certs, client/trust.ts): installing a test
 * root into the shared machine's real store is not this test's to do.
 */

const scratch = scratchDirs('hs-cli-trust-');
const openssl = (args: string[], cwd: string) => promisify(execFile)('openssl', args, { cwd });

/** An EC key and a certificate signed by `issuer` (or self-signed), via openssl. */
async function certificate(dir: string, name: string, subject: string, ext: string, issuer?: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), ext);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  const signer = issuer ? ['-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial'] : ['-signkey', `${name}.key`];
  await openssl(['x509', '-req', '-in', `${name}.csr`, ...signer, '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n';
const LEAF_EXT = `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${PUBLIC_HOST}\n`;

/** A leaf for PUBLIC_HOST under a new intermediate of `root`: writes chain-<name>.pem (leaf + intermediate) and leaf-<name>.key. */
async function chainUnder(dir: string, root: string, name: string): Promise<void> {
  await certificate(dir, `int-${name}`, `/CN=Test Intermediate ${name}`, CA_EXT, root);
  await certificate(dir, `leaf-${name}`, `/CN=${PUBLIC_HOST}`, LEAF_EXT, `int-${name}`);
  writeFileSync(join(dir, `chain-${name}.pem`), readFileSync(join(dir, `leaf-${name}.crt`), 'utf8') + readFileSync(join(dir, `int-${name}.crt`), 'utf8'));
}

function explain(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** The issuer CN of the certificate the server presents now. */
function presentedIssuer(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: PUBLIC_HOST, rejectUnauthorized: false }, () => {
      resolve(new X509Certificate(s.getPeerCertificate().raw).issuer);
      s.destroy();
    });
    s.on('error', reject);
  });
}

let api: TestApi;
let pki: string;
let certFile: string;
let keyFile: string;

before(async () => {
  pki = scratch();
  await certificate(pki, 'root', '/CN=Test Root (system store)', CA_EXT);
  await certificate(pki, 'other-root', '/CN=Test Root (not trusted)', CA_EXT);
  await chainUnder(pki, 'root', 'A');
  await chainUnder(pki, 'root', 'B');
  await chainUnder(pki, 'other-root', 'C');
  const live = scratch();
  certFile = join(live, 'api.crt');
  keyFile = join(live, 'api.key');
  copyFileSync(join(pki, 'chain-A.pem'), certFile);
  copyFileSync(join(pki, 'leaf-A.key'), keyFile);
  api = await startApi({ config: { tls: { mode: 'files', certFile, keyFile } } });
});

after(async () => {
  await api?.close();
});

/** Replaces the served chain as an operator's renewal does (new files renamed into place), and waits until it is served. */
async function renew(name: string): Promise<void> {
  for (const [from, to] of [[`leaf-${name}.key`, keyFile], [`chain-${name}.pem`, certFile]] as const) {
    copyFileSync(join(pki, from), `${to}.new`);
    renameSync(`${to}.new`, to);
  }
  assert.ok(await waitFor(async () => (await presentedIssuer(api.port)).includes(`Intermediate ${name}`), 20_000), `the server never presented intermediate ${name}`);
}

describe('the CLI trusts the system store for a server with a CA-issued certificate (tls.mode files)', () => {
  it('keeps working after a renewal with another intermediate; a pinned intermediate would not; a chain outside the store is refused', async () => {
    const url = `https://${PUBLIC_HOST}:${api.port}`;
    const store = { NODE_EXTRA_CA_CERTS: join(pki, 'root.crt') };
    const system = scratch();
    const conf = await runCli(['configure', '--api-url', url, '--address', '127.0.0.1'], { home: system, env: store });
    assert.equal(conf.code, 0, explain(conf));
    assert.match(conf.stderr, /trusted by this system's CA store: nothing to pin/);
    const saved = JSON.parse(readFileSync(join(system, '.config', 'hackstream', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(saved.trust, 'system');
    assert.equal(saved.fingerprint, undefined, 'nothing pinned');
    const login = await runCli(['login'], { home: system, env: store, stdin: `${ADMIN.username}\n${ADMIN.password}\n` });
    assert.equal(login.code, 0, explain(login));

    // What the CLI did before: pin the last certificate presented, intermediate A.
    const pinned = scratch();
    const intA = new X509Certificate(readFileSync(join(pki, 'int-A.crt'))).fingerprint256;
    const pin = await runCli(['configure', '--api-url', url, '--address', '127.0.0.1', '--ca-fingerprint', intA], { home: pinned, env: store });
    assert.equal(pin.code, 0, explain(pin));
    const pinnedConfig = JSON.parse(readFileSync(join(pinned, '.config', 'hackstream', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([pinnedConfig.trust, pinnedConfig.fingerprint], [undefined, intA.toUpperCase()], 'pinned, as before');
    // Without the root in the store nothing vouches for the server: configure falls back to pinning (and asks).
    const unknown = await runCli(['configure', '--api-url', url, '--address', '127.0.0.1'], { home: scratch() });
    assert.equal(unknown.code, EXIT.CA_MISMATCH, explain(unknown));
    assert.match(unknown.stderr, /SHA-256 fingerprint of the CA Test Intermediate A/);

    await renew('B');
    const list = await runCli(['list'], { home: system, env: store });
    assert.equal(list.code, 0, explain(list));
    const broken = await runCli(['login'], { home: pinned, env: store, stdin: `${ADMIN.username}\n${ADMIN.password}\n` });
    assert.equal(broken.code, EXIT.CA_MISMATCH, `the pinned intermediate no longer matches: ${explain(broken)}`);

    // The store is checked on every connection: a chain from a root outside it is refused before any request.
    await renew('C');
    const refused = await runCli(['list'], { home: system, env: store });
    assert.equal(refused.code, EXIT.CA_MISMATCH, explain(refused));
    assert.match(refused.stderr, /not vouched for by this system's CA store/);
  });
});
