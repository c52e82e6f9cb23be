import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { freePort, sleep } from './net.js';

/*
 * The test's own OpenLDAP server: Debian's slapd from a slapd.conf in a temp dir, an MDB
 * database with the memberof overlay, listening on 127.0.0.1 on two free high ports
 * (ldap:// with StartTLS, ldaps://), its certificate from a CA made here with openssl, and
 * seeded over the wire with ldapadd (so the overlay fills in memberOf).
 */

const run = promisify(execFile);
const SEED = new URL('../fixtures/ldap/seed.ldif', import.meta.url);

export const LDAP_BASE = 'dc=example,dc=org';
export const LDAP_ROOT = { dn: 'cn=admin,dc=example,dc=org', password: 'root-secret-7c1' } as const;
export const LDAP_READER = { dn: 'cn=hs-reader,ou=services,dc=example,dc=org', password: 'reader-secret-9f3' } as const;
/** The seeded people (uid → password), as in test/fixtures/ldap/seed.ldif. */
export const LDAP_PASSWORDS = {
  alice: 'alice-ldap-pass-1',
  Bob: 'bob-ldap-pass-2',
  carol: 'carol-ldap-pass-3',
  dave: 'dave-ldap-pass-5',
  'x y': 'xy-ldap-pass-4',
} as const;
export const ADMINS_GROUP = 'cn=hs-admins,ou=groups,dc=example,dc=org';
export const USERS_GROUP = 'cn=hs-users,ou=groups,dc=example,dc=org';

export interface TestSlapd {
  /** `ldap://127.0.0.1:<port>` (plain; StartTLS available). */
  readonly ldapUrl: string;
  /** `ldaps://127.0.0.1:<port>`. */
  readonly ldapsUrl: string;
  /** The same LDAPS listener as `ldaps://127.0.0.2:<port>`: an address the certificate does not name. */
  readonly mismatchUrl: string;
  /** The CA that signed the server certificate (PEM file). */
  readonly caFile: string;
  /** Another CA, which did not sign it (PEM file): verification must fail with it. */
  readonly otherCaFile: string;
  readonly dir: string;
  /** SIGKILLs the server (the "down" case); resolves once it exited. */
  kill(): Promise<void>;
  /** Freezes (SIGSTOP) or thaws (SIGCONT) the server: connections are accepted, nothing answers. */
  freeze(): void;
  thaw(): void;
  /** Applies an LDIF change (ldapmodify as the root DN, over StartTLS). */
  modify(ldif: string): Promise<void>;
  /** Starts it again on the same ports and database; resolves when a search answers. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSlapd(): Promise<TestSlapd> {
  const dir = mkdtempSync(join(tmpdir(), 'hs-slapd-'));
  try {
    const tls = await makeCertificates(dir);
    for (let attempt = 1; ; attempt++) {
      const ports = { ldap: await freePort(), ldaps: await freePort() };
      const conf = writeConfig(dir, tls);
      try {
        const child = await launch(conf, ports, tls.caFile);
        await seed(ports.ldap, tls.caFile);
        return handle(dir, conf, ports, tls, child);
      } catch (err) {
        // Another process may have taken a port between freePort() and slapd's bind.
        if (attempt >= 3) throw err;
        rmSync(join(dir, 'db'), { recursive: true, force: true });
      }
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

interface Tls {
  caFile: string;
  otherCaFile: string;
  certFile: string;
  keyFile: string;
}
interface Ports {
  ldap: number;
  ldaps: number;
}

function handle(dir: string, conf: string, ports: Ports, tls: Tls, first: ChildProcess): TestSlapd {
  let child: ChildProcess | null = first;
  const end = async (signal: NodeJS.Signals) => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'close');
    c.kill('SIGCONT');
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    ldapUrl: `ldap://127.0.0.1:${ports.ldap}`,
    ldapsUrl: `ldaps://127.0.0.1:${ports.ldaps}`,
    mismatchUrl: `ldaps://127.0.0.2:${ports.ldaps}`,
    caFile: tls.caFile,
    otherCaFile: tls.otherCaFile,
    dir,
    kill: () => end('SIGKILL'),
    freeze: () => void child?.kill('SIGSTOP'),
    thaw: () => void child?.kill('SIGCONT'),
    async modify(ldif) {
      await ldapTool('ldapmodify', ports.ldap, tls.caFile, [], ldif);
    },
    async restart() {
      await end('SIGTERM');
      child = await launch(conf, ports, tls.caFile);
    },
    async stop() {
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A CA, a server certificate for 127.0.0.1 and localhost signed by it, and an unrelated CA. */
async function makeCertificates(dir: string): Promise<Tls> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const p = (name: string) => join(dir, name);
  const ca = (name: string) =>
    run('openssl', ['req', '-x509', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.pem`), '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await Promise.all([ca('hs-test-ldap-ca'), ca('hs-test-other-ca'), run('openssl', ['req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=localhost'])]);
  writeFileSync(p('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  await run('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', p('hs-test-ldap-ca.pem'), '-CAkey', p('hs-test-ldap-ca.key'), '-CAcreateserial',
    '-out', p('server.pem'), '-days', '2', '-extfile', p('server.ext')]);
  return { caFile: p('hs-test-ldap-ca.pem'), otherCaFile: p('hs-test-other-ca.pem'), certFile: p('server.pem'), keyFile: p('server.key') };
}

function writeConfig(dir: string, tls: Tls): string {
  mkdirSync(join(dir, 'db'), { recursive: true });
  const conf = join(dir, 'slapd.conf');
  writeFileSync(conf, [
    ...['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `include /etc/ldap/schema/${s}.schema`),
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    'moduleload memberof',
    `pidfile ${join(dir, 'slapd.pid')}`,
    `argsfile ${join(dir, 'slapd.args')}`,
    `TLSCACertificateFile ${tls.caFile}`,
    `TLSCertificateFile ${tls.certFile}`,
    `TLSCertificateKeyFile ${tls.keyFile}`,
    // Simple binds only over TLS: a bind that reaches the server unencrypted fails (confidentialityRequired).
    'security simple_bind=128',
    'database mdb',
    `suffix "${LDAP_BASE}"`,
    `rootdn "${LDAP_ROOT.dn}"`,
    `rootpw ${LDAP_ROOT.password}`,
    `directory ${join(dir, 'db')}`,
    'maxsize 16777216',
    'overlay memberof',
    'memberof-refint TRUE',
    // Anonymous may only bind; the reader account and bound users may read; nobody reads passwords.
    'access to attrs=userPassword by anonymous auth by * none',
    `access to * by dn.exact="${LDAP_READER.dn}" read by users read by * none`,
    '',
  ].join('\n'));
  return conf;
}

/** Starts slapd in the foreground and resolves once a search over LDAPS answers. */
async function launch(conf: string, ports: Ports, caFile: string): Promise<ChildProcess> {
  const urls = `ldap://127.0.0.1:${ports.ldap}/ ldaps://127.0.0.1:${ports.ldaps}/ ldaps://127.0.0.2:${ports.ldaps}/`;
  const child = spawn('/usr/sbin/slapd', ['-d', '0', '-f', conf, '-h', urls], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => void (stderr = (stderr + c.toString('utf8')).slice(-4_000)));
  let exited = false;
  child.once('exit', () => void (exited = true));
  // A test process that dies without its after() hooks must not leave a slapd behind.
  const killOnExit = () => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('close', () => void process.off('exit', killOnExit));
  const deadline = Date.now() + 15_000;
  while (!(await answers(ports.ldaps, caFile))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`slapd did not start: ${stderr.trim() || 'no output'}`);
    }
    await sleep(50);
  }
  return child;
}

async function answers(port: number, caFile: string): Promise<boolean> {
  const client = new Client({ url: `ldaps://127.0.0.1:${port}`, connectTimeout: 1_000, timeout: 1_000, tlsOptions: { ca: readFileSync(caFile) } });
  try {
    await client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['namingContexts'] });
    return true;
  } catch {
    return false;
  } finally {
    await client.unbind().catch(() => {});
  }
}

async function seed(port: number, caFile: string): Promise<void> {
  await ldapTool('ldapadd', port, caFile, ['-f', SEED.pathname]);
}

/** Runs ldapadd/ldapmodify as the root DN over StartTLS, with `input` on stdin when given. */
async function ldapTool(tool: 'ldapadd' | 'ldapmodify', port: number, caFile: string, args: string[], input?: string): Promise<void> {
  const child = run(tool, ['-x', '-ZZ', '-H', `ldap://127.0.0.1:${port}`, '-D', LDAP_ROOT.dn, '-w', LDAP_ROOT.password, ...args], {
    env: { ...process.env, LDAPTLS_CACERT: caFile, LDAPTLS_REQCERT: 'demand' },
  });
  child.child.stdin?.end(input ?? '');
  await child;
}
