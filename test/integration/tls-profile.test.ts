import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startApi, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { scratchDirs } from '../helpers/tmp.js';

const tempDir = scratchDirs('hs-tls-profile-');
const HSTS = 'max-age=63072000';
const ONE_YEAR_S = 365 * 86_400;

/** How a handshake ended: the negotiated parameters, or the error code the client saw. */
type Outcome = { ok: true; protocol: string | null; cipher: string; group: string | undefined } | { ok: false; code: string };

function handshake(port: number, ca: string, o: tls.ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: PUBLIC_HOST, ca, ...o });
    socket.once('secureConnect', () => {
      const key = socket.getEphemeralKeyInfo();
      const group = key && 'name' in key && typeof key.name === 'string' ? key.name : undefined;
      resolve({ ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher().name, group });
      socket.end();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      resolve({ ok: false, code: err.code ?? err.message });
      socket.destroy();
    });
  });
}

// Both codes name an alert the *server* sent (OpenSSL reports a local refusal differently), so a
// refusal here is the edge's, not Node's client being stricter than the case asks.
const NO_SHARED_CIPHER = 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE';
const OLD_PROTOCOL = 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION';

interface HandshakeCase {
  what: string;
  client: tls.ConnectionOptions;
  /** Negotiated cipher, or the server's alert as the client reports it. */
  expect: { cipher: string; protocol?: string } | { refused: string };
}

function checkCase(c: HandshakeCase, got: Outcome): void {
  if ('refused' in c.expect) {
    assert.deepEqual(got, { ok: false, code: c.expect.refused }, `${c.what}: ${JSON.stringify(got)}`);
  } else {
    assert.ok(got.ok, `${c.what}: ${JSON.stringify(got)}`);
    assert.equal(got.cipher, c.expect.cipher, c.what);
    if (c.expect.protocol) assert.equal(got.protocol, c.expect.protocol, c.what);
  }
}

describe('API TLS follows Mozilla intermediate (node:tls clients against the real edge)', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi({ db: 'postgres' });
  });
  after(async () => {
    await api?.close();
  });

  // The self-signed API certificate is RSA, so the ECDHE-RSA suites are the ones in play.
  const cases: HandshakeCase[] = [
    { what: 'a CBC-only TLS 1.2 client is refused', client: { ciphers: 'ECDHE-RSA-AES128-SHA', maxVersion: 'TLSv1.2' }, expect: { refused: NO_SHARED_CIPHER } },
    { what: 'CBC with SHA-256 is refused too', client: { ciphers: 'ECDHE-RSA-AES128-SHA256', maxVersion: 'TLSv1.2' }, expect: { refused: NO_SHARED_CIPHER } },
    { what: 'RSA key exchange (no forward secrecy) is refused', client: { ciphers: 'AES128-GCM-SHA256', maxVersion: 'TLSv1.2' }, expect: { refused: NO_SHARED_CIPHER } },
    { what: 'finite-field DHE is refused', client: { ciphers: 'DHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' }, expect: { refused: NO_SHARED_CIPHER } },
    {
      what: 'TLS 1.1 is refused',
      client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
      expect: { refused: OLD_PROTOCOL },
    },
    { what: 'TLS 1.0 is refused', client: { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, expect: { refused: OLD_PROTOCOL } },
    {
      what: 'a GCM TLS 1.2 client succeeds',
      client: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' },
      expect: { cipher: 'ECDHE-RSA-AES128-GCM-SHA256', protocol: 'TLSv1.2' },
    },
    {
      what: 'a ChaCha20 TLS 1.2 client succeeds',
      client: { ciphers: 'ECDHE-RSA-CHACHA20-POLY1305', maxVersion: 'TLSv1.2' },
      expect: { cipher: 'ECDHE-RSA-CHACHA20-POLY1305', protocol: 'TLSv1.2' },
    },
    {
      // With the server's order honoured it would pick AES128-GCM, first in its list.
      what: 'the client’s preference wins (honorCipherOrder off)',
      client: { ciphers: 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' },
      expect: { cipher: 'ECDHE-RSA-CHACHA20-POLY1305' },
    },
    { what: 'a default TLS 1.3 client succeeds', client: {}, expect: { cipher: 'TLS_AES_256_GCM_SHA384', protocol: 'TLSv1.3' } },
    { what: 'a curve outside X25519/P-256/P-384 is refused', client: { ecdhCurve: 'secp521r1' }, expect: { refused: NO_SHARED_CIPHER } },
  ];
  for (const c of cases) {
    it(c.what, async () => checkCase(c, await handshake(api.port, api.gw.ca, c.client)));
  }

  it('key exchange uses the profile’s groups', async () => {
    for (const group of ['X25519', 'prime256v1', 'secp384r1']) {
      const got = await handshake(api.port, api.gw.ca, { ecdhCurve: group, maxVersion: 'TLSv1.2' });
      assert.ok(got.ok && got.group === group, `${group}: ${JSON.stringify(got)}`);
    }
  });

  it('every API response carries HSTS for two years: success, not found, error', async () => {
    const responses = [
      await api.request('GET', '/health'),
      await api.request('GET', '/no-such-path'),
      await api.request('POST', '/v1/login', { raw: '{not json', headers: { 'content-type': 'application/json' } }),
      await api.request('GET', '/v1/me'),
    ];
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 404, 400, 401],
    );
    for (const r of responses) assert.equal(r.headers['strict-transport-security'], HSTS, `status ${r.status}`);
  });
});

describe('API TLS with an ECDSA certificate (as ACME issues)', () => {
  let api: TestApi;
  let certPem: string;
  before(async () => {
    const dir = tempDir();
    const [certFile, keyFile] = [join(dir, 'api.crt'), join(dir, 'api.key')];
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${PUBLIC_HOST}`, '-addext', `subjectAltName=DNS:${PUBLIC_HOST}`,
    ]);
    certPem = await readFile(certFile, 'utf8');
    api = await startApi({ db: 'postgres', config: { tls: { mode: 'files', certFile, keyFile } } });
  });
  after(async () => {
    await api?.close();
  });

  const cases: HandshakeCase[] = [
    {
      what: 'ECDHE-ECDSA with AES-GCM succeeds',
      client: { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' },
      expect: { cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256', protocol: 'TLSv1.2' },
    },
    {
      what: 'ECDHE-ECDSA with ChaCha20 succeeds',
      client: { ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305', maxVersion: 'TLSv1.2' },
      expect: { cipher: 'ECDHE-ECDSA-CHACHA20-POLY1305', protocol: 'TLSv1.2' },
    },
    { what: 'ECDHE-ECDSA with CBC is refused', client: { ciphers: 'ECDHE-ECDSA-AES128-SHA', maxVersion: 'TLSv1.2' }, expect: { refused: NO_SHARED_CIPHER } },
    { what: 'TLS 1.3 succeeds', client: {}, expect: { cipher: 'TLS_AES_256_GCM_SHA384', protocol: 'TLSv1.3' } },
  ];
  for (const c of cases) {
    it(c.what, async () => checkCase(c, await handshake(api.port, certPem, c.client)));
  }
});

/** One line of testssl's flat JSON output. */
interface Finding {
  id: string;
  severity: string;
  finding: string;
}

/**
 * Findings that are not the edge's TLS configuration but the default mode's private CA; each
 * is allowed only under this id. The chain itself must verify: testssl gets the CA (--add-ca),
 * so `cert_chain_of_trust` and `cert_trust` are *not* allowed to fail.
 */
const ALLOWED: Readonly<Record<string, string>> = {
  // The self-signed mode's CA is private and offline: it publishes no CRL and runs no OCSP
  // responder (clients pin it; a compromised key is replaced, not revoked). testssl rates a
  // certificate without either URI HIGH. With tls.mode "acme" the public CA's URIs are there.
  cert_revocation: 'private CA: no CRL or OCSP URI',
};

/** Ids that must be in the output, so a scan that silently skipped a part cannot pass. */
const REQUIRED = [
  'SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3',
  'cert_chain_of_trust', 'cert_trust',
  'heartbleed', 'CCS', 'ROBOT', 'secure_client_renego', 'CRIME_TLS', 'POODLE_SSL', 'SWEET32', 'BEAST', 'LUCKY13', 'RC4',
] as const;

// 3.0 names the cipher categories AVERAGE (CBC), 3DES_IDEA, LOW…; 3.2 OBSOLETED, STRONG_NOFS…:
// whatever the version, only AEAD with forward secrecy may be offered.
const GOOD_CATEGORIES = new Set(['cipherlist_STRONG', 'cipherlist_STRONG_FS']);
const AEAD_SUITE = /_(AES_(128|256)_GCM|CHACHA20_POLY1305)_SHA(256|384)\b/;

const show = (fs: Finding[]): string[] => fs.map((f) => `${f.id} [${f.severity}] ${f.finding}`);

/** Everything in a scan that breaks the profile, one line each (empty: the scan passes). */
function violations(findings: Finding[]): string[] {
  const byId = new Map(findings.map((f) => [f.id, f]));
  const out: string[] = [];
  const flag = (why: string, fs: Finding[]) => out.push(...show(fs).map((l) => `${why}: ${l}`));

  flag('scan problem', findings.filter((f) => f.severity === 'FATAL' || f.id === 'scanProblem'));
  for (const id of REQUIRED) if (!byId.has(id)) out.push(`not checked: ${id}`);
  flag(
    'finding',
    findings.filter(
      (f) =>
        !(f.id in ALLOWED) &&
        (['MEDIUM', 'HIGH', 'CRITICAL'].includes(f.severity) || /(?<!not )vulnerable/i.test(f.finding) || /NOT ok/i.test(f.finding)),
    ),
  );
  const failing = (ids: string[], ok: RegExp) => ids.flatMap((id) => byId.get(id) ?? []).filter((f) => !ok.test(f.finding));
  flag('old protocol offered', failing(['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1'], /^not offered/));
  flag('protocol missing', failing(['TLS1_2', 'TLS1_3'], /^offered/));
  flag('chain', failing(['cert_chain_of_trust'], /passed/));

  const categories = findings.filter((f) => f.id.startsWith('cipherlist_'));
  if (categories.length < 5) out.push(`cipher categories not checked (${categories.length})`);
  flag('weak cipher category offered', categories.filter((f) => !GOOD_CATEGORIES.has(f.id) && !/^not offered/.test(f.finding)));
  const ciphers = findings.filter((f) => f.id.startsWith('cipher-tls'));
  if (!ciphers.some((f) => f.id.startsWith('cipher-tls1_2_'))) out.push('no TLS 1.2 cipher listed');
  if (!ciphers.some((f) => f.id.startsWith('cipher-tls1_3_'))) out.push('no TLS 1.3 cipher listed');
  flag('outside the AEAD suites (CBC…)', ciphers.filter((f) => !AEAD_SUITE.test(f.finding) || /CBC/.test(f.finding)));
  flag('no ECDHE', ciphers.filter((f) => f.id.startsWith('cipher-tls1_2_') && !/\bECDHE-/.test(f.finding)));

  const hsts = byId.get('HSTS_time') ?? byId.get('HSTS');
  const maxAge = Number(/=(\d+) seconds/.exec(hsts?.finding ?? '')?.[1] ?? NaN);
  if (!(maxAge >= ONE_YEAR_S)) out.push(`HSTS max-age under a year: ${hsts ? show([hsts])[0] : 'no HSTS finding'}`);
  return out;
}

function testsslBinary(): string | undefined {
  // Debian installs it as `testssl`; upstream's checkout calls it `testssl.sh`.
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['testssl', 'testssl.sh']) if (existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Runs testssl in its own process group, killed as a whole (it forks openssl) at the deadline. */
function runTestssl(bin: string, args: string[], deadlineMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TERM: 'dumb' } });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      reject(new Error(`testssl did not finish in ${deadlineMs} ms:\n${output.slice(-4000)}`));
    }, deadlineMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('testssl.sh against the edge (protocols, ciphers, vulnerabilities, headers)', () => {
  let api: TestApi;
  before(async () => {
    api = await startApi({ db: 'postgres' });
  });
  after(async () => {
    await api?.close();
  });

  it('the judge flags what testssl 3.0.8 reported before this profile (recorded findings)', () => {
    // Abridged from a scan of the previous settings (TLS 1.2+, Node's default cipher list, no HSTS).
    const before: Finding[] = [
      { id: 'cipherlist_AVERAGE', severity: 'LOW', finding: 'offered' },
      { id: 'HSTS', severity: 'LOW', finding: 'not offered' },
      { id: 'LUCKY13', severity: 'LOW', finding: 'potentially vulnerable, uses TLS CBC ciphers' },
      { id: 'cipher-tls1_2_xc013', severity: 'INFO', finding: 'TLS 1.2   xc013   ECDHE-RSA-AES128-SHA   ECDH 253   AES   128   TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA' },
      { id: 'cipher-tls1_2_x9c', severity: 'INFO', finding: 'TLS 1.2   x9c   AES128-GCM-SHA256   RSA   AESGCM   128   TLS_RSA_WITH_AES_128_GCM_SHA256' },
    ];
    const got = violations(before);
    for (const expected of [
      /^finding: LUCKY13 /,
      /^weak cipher category offered: cipherlist_AVERAGE /,
      /^outside the AEAD suites \(CBC…\): cipher-tls1_2_xc013 /,
      /^no ECDHE: cipher-tls1_2_x9c /,
      /^HSTS max-age under a year: HSTS \[LOW\] not offered/,
    ]) {
      assert.ok(got.some((l) => expected.test(l)), `${String(expected)} not in:\n${got.join('\n')}`);
    }
  });

  it('finds nothing NOT ok or VULNERABLE beyond the private CA, no CBC, no TLS < 1.2, and HSTS', { timeout: 8 * 60_000 }, async (t) => {
    const bin = testsslBinary();
    assert.ok(bin, 'testssl is not installed: scripts/test.sh installs it (Debian package testssl.sh)');
    const dir = tempDir();
    const caFile = join(dir, 'ca.pem');
    const jsonFile = join(dir, 'testssl.json');
    await writeFile(caFile, api.gw.ca);
    const started = Date.now();
    // -p protocols, -s cipher categories, -E every cipher per protocol, -f forward secrecy,
    // -U all vulnerabilities, -h HTTP headers, -S certificate and server defaults. Left out:
    // client simulation (-c: slow, and it judges nothing) and -g (server bug probes).
    const { code, output } = await runTestssl(
      bin,
      [
        '--quiet', '--color', '0', '--warnings', 'off',
        // No DNS: the name is only for SNI and Host; --ip says where to connect.
        '-n', 'none', '--ip', '127.0.0.1',
        '--add-ca', caFile,
        '--connect-timeout', '10', '--openssl-timeout', '10',
        '--jsonfile', jsonFile,
        '-p', '-s', '-E', '-f', '-U', '-h', '-S',
        `${PUBLIC_HOST}:${api.port}`,
      ],
      6 * 60_000,
    );
    t.diagnostic(`testssl ran ${Math.round((Date.now() - started) / 1000)} s, exit ${code}`);
    assert.ok(existsSync(jsonFile), `testssl wrote no JSON (exit ${code}):\n${output.slice(-4000)}`);
    const findings = JSON.parse(await readFile(jsonFile, 'utf8')) as Finding[];
    const minor = findings.filter((f) => f.severity === 'LOW');
    if (minor.length > 0) t.diagnostic(`LOW findings (not failing by themselves):\n${show(minor).join('\n')}`);
    const found = violations(findings);
    assert.deepEqual(found, [], `testssl: the API's TLS breaks Mozilla intermediate:\n${found.join('\n')}\n\n${output.slice(-2000)}`);
    assert.match(findings.find((f) => f.id === 'HSTS_time')?.finding ?? '', /=63072000 seconds/);
  });
});
