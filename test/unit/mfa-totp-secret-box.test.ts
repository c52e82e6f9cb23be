import assert from 'node:assert/strict';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { rmSync } from 'node:fs';
import { loadOrCreateKey, secretBox } from '../../plugins/mfa-totp/secret-box.js';
import { hashRecoveryCode, newRecoveryCodes, RECOVERY_CODE_PATTERN } from '../../plugins/mfa-totp/recovery-codes.js';
import { totpOptions } from '../../plugins/mfa-totp/options.js';
import { tempDir } from '../helpers/store.js';

const dir = tempDir('mfa-totp-key-');
after(() => rmSync(dir, { recursive: true, force: true }));

describe('mfa-totp key file', () => {
  it('is created 0600 in a new directory, holds 32 bytes, and is read back the same', async () => {
    const path = join(dir, 'sub', 'totp.key');
    const key = await loadOrCreateKey(path);
    assert.equal(key.length, 32);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await loadOrCreateKey(path), key);
  });

  it('ends up as one key when several starts create it at once', async () => {
    const path = join(dir, 'race.key');
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateKey(path)));
    for (const k of keys) assert.deepEqual(k, keys[0]);
    assert.equal((await readFile(path, 'utf8')).trim(), keys[0]?.toString('hex'));
  });

  const refused = [
    { what: 'readable by others', text: `${'ab'.repeat(32)}\n`, mode: 0o644, error: /readable by others/ },
    { what: 'not a key', text: 'hello\n', mode: 0o600, error: /does not hold a key/ },
    { what: 'too short', text: `${'ab'.repeat(16)}\n`, mode: 0o600, error: /does not hold a key/ },
  ];
  for (const c of refused) {
    it(`refuses a key file that is ${c.what}`, async () => {
      const path = join(dir, `bad-${c.what.replaceAll(' ', '-')}.key`);
      await writeFile(path, c.text, { mode: c.mode });
      await chmod(path, c.mode);
      await assert.rejects(loadOrCreateKey(path), c.error);
    });
  }
});

describe('mfa-totp secret box (AES-256-GCM)', () => {
  const key = Buffer.alloc(32, 7);
  const box = secretBox(key);
  const user = '6f1c2a52-8a7e-4a56-9d0c-1f7d1d0a3b11';
  const other = '0b7f1e0e-3c41-4d5e-8f3a-2a9c8d7e6f50';

  it('opens what it sealed, and the sealed bytes do not contain the secret', () => {
    const sealed = box.seal('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', user);
    assert.equal(box.open(sealed, user), 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
    assert.ok(!sealed.toString('latin1').includes('JBSWY3DP'));
    assert.notDeepEqual(box.seal('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', user), sealed, 'a fresh IV each time');
  });

  const tamper = [
    { what: "another user's row", open: (s: Buffer) => box.open(s, other) },
    { what: 'another key', open: (s: Buffer) => secretBox(Buffer.alloc(32, 8)).open(s, user) },
    { what: 'a flipped byte', open: (s: Buffer) => box.open(Buffer.concat([s.subarray(0, -1), Buffer.from([(s.at(-1) ?? 0) ^ 1])]), user) },
    { what: 'a truncated value', open: (s: Buffer) => box.open(s.subarray(0, 10), user) },
  ];
  for (const c of tamper) {
    it(`refuses to open with ${c.what}`, () => {
      assert.throws(() => c.open(box.seal('SECRETSECRETSECRET', user)));
    });
  }

  it('has a key id that differs between keys and is not the key', () => {
    assert.notEqual(box.keyId, secretBox(Buffer.alloc(32, 8)).keyId);
    assert.ok(!key.toString('hex').includes(box.keyId));
  });
});

describe('mfa-totp recovery codes', () => {
  it('are 10 distinct codes of the documented form', () => {
    const codes = newRecoveryCodes();
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const c of codes) assert.match(c, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
  });

  it('hash the same whatever the case, hyphens or spaces, and differently per user', () => {
    const [code = ''] = newRecoveryCodes(1);
    const user = '6f1c2a52-8a7e-4a56-9d0c-1f7d1d0a3b11';
    const variant = code.toLowerCase().replaceAll('-', ' ');
    assert.match(variant, RECOVERY_CODE_PATTERN);
    assert.deepEqual(hashRecoveryCode(user, variant), hashRecoveryCode(user, code));
    assert.notDeepEqual(hashRecoveryCode('0b7f1e0e-3c41-4d5e-8f3a-2a9c8d7e6f50', code), hashRecoveryCode(user, code));
  });
});

describe('mfa-totp options', () => {
  const cases = [
    { what: 'defaults', input: {}, ok: true },
    { what: 'a provider list', input: { providers: ['auth-local', 'auth-oidc'] }, ok: true },
    { what: 'an unknown key', input: { issuers: 'x' }, ok: false },
    { what: 'a colon in the issuer', input: { issuer: 'Acme:Prod' }, ok: false },
    { what: 'an empty provider list', input: { providers: [] }, ok: false },
    { what: 'an empty key file path', input: { keyFile: '' }, ok: false },
  ];
  for (const c of cases) {
    it(`${c.ok ? 'accepts' : 'refuses'} ${c.what}`, () => assert.equal(totpOptions.safeParse(c.input).success, c.ok));
  }

  it('defaults to issuer HackStream, every provider and ./mfa-totp.key', () => {
    assert.deepEqual(totpOptions.parse({}), { issuer: 'HackStream', keyFile: 'totp.key', providers: 'all' });
  });
});
