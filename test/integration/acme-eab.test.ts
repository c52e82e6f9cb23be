import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { LETS_ENCRYPT_DIRECTORY, LETS_ENCRYPT_STAGING_DIRECTORY } from '../../core/config/acme.js';
import { MemoryChallengeStore } from '../../core/certs/acme-challenges.js';
import { AcmeSource } from '../../core/certs/acme-source.js';
import type { KeyPair } from '../../core/certs/index.js';
import { ConfigError, parseConfig } from '../../core/config/load.js';
import { tlsSchema } from '../../core/config/schema.js';
import { createLogger } from '../../lib/log.js';
import { waitFor } from '../helpers/net.js';
import { alpnResponder, freePort, startPebble } from '../helpers/pebble.js';
import { scratchDirs } from '../helpers/tmp.js';

const HOST = 'localhost';
const tempDir = scratchDirs('hs-acme-eab-');

describe('tls.acme: Let\'s Encrypt by default, staging, External Account Binding', () => {
  it('defaults to Let\'s Encrypt\'s production directory, and staging: true to its staging one', () => {
    assert.equal(LETS_ENCRYPT_DIRECTORY, 'https://acme-v02.api.letsencrypt.org/directory');
    assert.equal(tlsSchema.parse({ mode: 'acme' }).acme?.directoryUrl, LETS_ENCRYPT_DIRECTORY);
    assert.equal(tlsSchema.parse({ mode: 'acme', acme: { email: 'ops@example.org' } }).acme?.directoryUrl, LETS_ENCRYPT_DIRECTORY);
    assert.equal(tlsSchema.parse({ mode: 'acme', acme: { staging: true } }).acme?.directoryUrl, LETS_ENCRYPT_STAGING_DIRECTORY);
    assert.equal(tlsSchema.parse({ mode: 'acme', acme: { directoryUrl: 'https://ca.example.org/dir' } }).acme?.directoryUrl, 'https://ca.example.org/dir');
    assert.equal(tlsSchema.parse({}).acme, undefined, 'self-signed needs no ACME settings');
  });

  it('refuses staging with a directoryUrl, and a malformed EAB, naming the field', () => {
    const problems = (tls: unknown): string => {
      try {
        parseConfig({ tls });
      } catch (err) {
        if (err instanceof ConfigError) return err.message;
        throw err;
      }
      return 'accepted';
    };
    assert.match(problems({ mode: 'acme', acme: { staging: true, directoryUrl: 'https://ca.example.org/dir' } }), /tls\.acme\.staging: staging selects Let's Encrypt's staging directory; remove it or directoryUrl/);
    assert.match(problems({ mode: 'acme', acme: { externalAccountBinding: { kid: 'k' } } }), /tls\.acme\.externalAccountBinding\.hmacKey: /);
    assert.match(problems({ mode: 'acme', acme: { externalAccountBinding: { kid: 'k', hmacKey: 'not base64!' } } }), /hmacKey: must be the base64url HMAC key the CA gave you/);
    assert.match(problems({ mode: 'acme', acme: { externalAccountBinding: { kid: 'k', hmacKey: 'c2hvcnQ' } } }), /hmacKey: must decode to at least 16 bytes/);
    assert.match(problems({ mode: 'acme', acme: { externalAccountBinding: { kid: 'k', hmacKey: 'x'.repeat(43), extra: 1 } } }), /externalAccountBinding: Unrecognized key: "extra"/);
    // The key itself never appears in a config error.
    const key = randomBytes(32).toString('base64url');
    assert.doesNotMatch(problems({ mode: 'acme', acme: { externalAccountBinding: { kid: '', hmacKey: key } } }), new RegExp(key));
  });

  it('against pebble requiring EAB: an account without it is refused, with it the certificate is issued; the HMAC key is never logged', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    const port = await freePort();
    const kid = 'hackstream-test-kid';
    const hmacKey = randomBytes(32).toString('base64url');
    const pebble = await startPebble({ dir, tlsPort: port, eabKeys: { [kid]: hmacKey } });
    const challenges = new MemoryChallengeStore();
    const front = alpnResponder(challenges);
    await new Promise<void>((resolve) => front.listen(port, '127.0.0.1', resolve));
    let logged = '';
    const sink = new PassThrough();
    sink.on('data', (d: Buffer) => (logged += d.toString()));
    const logger = createLogger({ level: 'debug', destination: sink });
    const fallback = { certPem: 'fallback', keyPem: 'fallback' };
    const open = (certsDir: string, eab: boolean) =>
      AcmeSource.open({
        certsDir,
        publicHost: HOST,
        acme: { ...tlsSchema.parse({ mode: 'acme', acme: { directoryUrl: pebble.directoryUrl, caFile: pebble.caFile, ...(eab ? { externalAccountBinding: { kid, hmacKey } } : {}) } }).acme! },
        fallback: { current: () => fallback, onChange: () => () => {}, close: async () => {}, start: () => {} },
        challenges,
        logger,
        retryMinMs: 60_000,
      });
    try {
      const without = await open(tempDir(), false);
      try {
        without.start();
        assert.ok(await waitFor(() => logged.includes('"msg":"ACME order failed"'), 20_000), `no failure logged; pebble says:\n${pebble.output()}`);
        const failure = logged.split('\n').find((l) => l.includes('"msg":"ACME order failed"')) ?? '';
        assert.match(failure, /the ACME server requires External Account Binding: set tls\.acme\.externalAccountBinding/, failure);
        assert.deepEqual(without.current(), fallback, 'still the fallback certificate');
        assert.doesNotMatch(logged, /ACME account registered/);
      } finally {
        await without.close();
      }

      const withEab = await open(tempDir(), true);
      try {
        const changed = new Promise<KeyPair>((resolve) => withEab.onChange(resolve));
        withEab.start();
        const pair = await changed;
        const leaf = new X509Certificate(pair.certPem);
        const intermediate = new X509Certificate(await pebble.intermediate());
        assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), 'issued by pebble');
        assert.equal(leaf.subjectAltName, `DNS:${HOST}`);
        assert.match(logged, /"msg":"ACME account registered"/);
        assert.match(logged, new RegExp(`"eabKid":"${kid}"`), 'the key id is logged, to tell accounts apart');
      } finally {
        await withEab.close();
      }
      assert.ok(!logged.includes(hmacKey), 'the HMAC key is in no log line');
      assert.ok(!logged.includes(Buffer.from(hmacKey, 'base64url').toString('base64')), 'nor its base64 form');
    } finally {
      front.close();
      await pebble.close();
    }
  });
});
