import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { trustProblem } from '../../client/http.js';
import { silentLogger } from '../../lib/log.js';
import { loadOrCreateCa, signServerCert, type Ca } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { scratchDirs } from '../helpers/tmp.js';

/* What the CLI accepts as a pinned server: real CAs and certificates (the gateway's own code). */
const scratch = scratchDirs('hs-cli-trust-');
const HOST = 'hackstream.test';
const DAY = 86_400_000;

let ours: Ca;
let theirs: Ca;
const x509 = (pem: string) => new X509Certificate(pem);
const fp = (pem: string) => x509(pem).fingerprint256;

async function leaf(ca: Ca, o: { hostname?: string; notBefore?: Date; notAfter?: Date } = {}): Promise<string> {
  const key = await generateRsaKey(2048);
  return signServerCert(ca, {
    hostname: o.hostname ?? HOST,
    publicKeyPem: key.publicKeyPem,
    notBefore: o.notBefore ?? new Date(Date.now() - DAY),
    notAfter: o.notAfter ?? new Date(Date.now() + DAY),
  });
}

before(async () => {
  [ours, theirs] = await Promise.all([loadOrCreateCa(scratch(), silentLogger()), loadOrCreateCa(scratch(), silentLogger())]);
});

describe('trustProblem (the pin check before any request)', () => {
  it('trusts a certificate issued for the host by the pinned CA, and a pinned certificate itself', async () => {
    const cert = await leaf(ours);
    assert.equal(trustProblem([x509(cert), x509(ours.certPem)], fp(ours.certPem), HOST), undefined);
    assert.equal(trustProblem([x509(cert)], fp(cert), HOST), undefined);
    // Fingerprints are compared whatever their case or separators.
    assert.equal(trustProblem([x509(cert)], fp(cert).replaceAll(':', '').toLowerCase(), HOST), undefined);
  });

  const cases: { what: string; chain: () => Promise<string[]>; host?: string; problem: RegExp }[] = [
    {
      what: 'another CA entirely',
      chain: async () => [await leaf(theirs), theirs.certPem],
      problem: /none of the certificates it presented .* is the pinned/,
    },
    {
      what: 'our CA appended after a certificate another CA signed (an interceptor copying our chain)',
      chain: async () => [await leaf(theirs), ours.certPem],
      problem: /certificate 0 is not signed by the next one/,
    },
    {
      what: 'our CA, but a certificate for another name',
      chain: async () => [await leaf(ours, { hostname: 'evil.test' }), ours.certPem],
      problem: /not for hackstream\.test/,
    },
    {
      what: 'our CA, but an expired certificate',
      chain: async () => [await leaf(ours, { notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) }), ours.certPem],
      problem: /valid only from/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.what}`, async () => {
      const chain = (await c.chain()).map(x509);
      assert.match(trustProblem(chain, fp(ours.certPem), c.host ?? HOST) ?? 'trusted', c.problem);
    });
  }
});
