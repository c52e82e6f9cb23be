import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AUDIT_ACTION_PATTERN, AUDIT_ACTIONS, isAuditAction } from '../../core/audit/actions.js';
import { canonicalJson, DETAILS_MAX_CHARS, prepareDetails, REDACTED } from '../../core/audit/details.js';
import { escapeAuditText, escapeForExport, TRUNCATION_MARK } from '../../core/audit/escape.js';
import { auditRowHash, type HashedFields } from '../../core/audit/hash.js';
import { parseAuditQuery } from '../../core/audit/query.js';
import { normalizeIp, toAuditEvent } from '../../core/audit/record.js';
import { AppError } from '../../core/errors.js';
import { AUDIT_GENESIS_HASH } from '../../core/store/audit-chain.js';

describe('audit text escaping', () => {
  const cases: { desc: string; input: string; stored: string }[] = [
    { desc: 'plain text is unchanged', input: 'alice@example.org', stored: 'alice@example.org' },
    { desc: 'the reliability D5 username', input: 'a\nFAKE LOG\u001b[31m', stored: 'a\\nFAKE LOG\\u001b[31m' },
    { desc: 'CR, tab, NUL and DEL', input: 'a\r\tb\u0000c\u007f', stored: 'a\\r\\tb\\u0000c\\u007f' },
    { desc: 'C1 controls (CSI)', input: 'x\u009b31m', stored: 'x\\u009b31m' },
    { desc: 'bidi override and zero-width space', input: 'admin\u202e\u200bnimda', stored: 'admin\\u202e\\u200bnimda' },
    { desc: 'line and paragraph separators', input: 'a\u2028b\u2029c', stored: 'a\\u2028b\\u2029c' },
    { desc: 'a lone surrogate', input: 'a\ud800b', stored: 'a\\ud800b' },
    { desc: 'a backslash, so escapes read back unambiguously', input: 'C:\\n', stored: 'C:\\\\n' },
    { desc: 'emoji and accents stay', input: 'Zoë 🦊', stored: 'Zoë 🦊' },
    { desc: 'a tag character outside the BMP', input: 'a\u{e0001}', stored: 'a\\u{e0001}' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      assert.equal(escapeAuditText(c.input, 1000), c.stored);
      assert.equal(escapeForExport(c.stored), c.stored, 'stored text passes the export guard unchanged');
    });
  }

  it('the export guard escapes controls that slipped past storage but leaves backslashes', () => {
    assert.equal(escapeForExport('a\nb\\n\u001b'), 'a\\nb\\n\\u001b');
  });

  it('caps the length without cutting an escape or a surrogate pair in half', () => {
    assert.equal(escapeAuditText('x'.repeat(50), 20), `${'x'.repeat(20 - TRUNCATION_MARK.length)}${TRUNCATION_MARK}`);
    const cut = escapeAuditText(`ab${'\n'.repeat(12)}`, 20);
    assert.ok(cut.length <= 20);
    assert.match(cut, /^ab(\\n)*…\[truncated\]$/);
    assert.match(escapeAuditText('🦊'.repeat(20), 17), /^(🦊)*…\[truncated\]$/);
  });

  it('never leaves a control or format character, whatever the input (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.integer({ min: 13, max: 300 }), (s, max) => {
        const out = escapeAuditText(s, max);
        assert.ok(out.length <= max);
        assert.doesNotMatch(out, /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u);
        assert.equal(escapeForExport(out), out);
      }),
    );
  });
});

describe('audit details', () => {
  it('escapes strings and keys, redacts secret-looking keys, bounds depth, drops non-JSON', () => {
    const input = {
      username: 'a\nb',
      'k\u001b': 1,
      password: 'hunter2',
      refreshToken: 'abc',
      api_key: 'k',
      tokenEpoch: 3,
      nested: { a: { b: { c: { d: { e: 1 } } } } },
      when: new Date('2026-01-02T03:04:05.678Z'),
      big: 12n,
      nan: Number.NaN,
      fn: () => 1,
      missing: undefined,
      list: ['x\ty', undefined],
    };
    const { value, canonical } = prepareDetails(input);
    assert.deepEqual(value, {
      api_key: REDACTED,
      big: '12',
      'k\\u001b': 1,
      list: ['x\\ty', null],
      nan: 'NaN',
      nested: { a: { b: { c: { d: '[too deep]' } } } },
      password: REDACTED,
      refreshToken: REDACTED,
      tokenEpoch: 3,
      username: 'a\\nb',
      when: '2026-01-02T03:04:05.678Z',
    });
    assert.equal(canonical, canonicalJson(value));
    assert.ok(!canonical.includes('hunter2'));
  });

  it('replaces details that are too large with a marker', () => {
    const big = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'x'.repeat(1000)]));
    const { value } = prepareDetails(big);
    assert.equal(value.truncated, true);
    assert.ok(typeof value.chars === 'number' && value.chars > DETAILS_MAX_CHARS);
  });

  it('canonical JSON sorts keys at every level', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: null }], c: 'x' } }), '{"a":{"c":"x","d":[2,{"y":null,"z":1}]},"b":1}');
  });

  it('a key named __proto__ stays a key', () => {
    const { value } = prepareDetails(JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>);
    assert.deepEqual(Object.keys(value), ['__proto__']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('audit row hash', () => {
  const fields: HashedFields = {
    id: '7',
    at: new Date('2026-01-02T03:04:05.678Z'),
    actor: 'u1',
    action: 'user_created',
    target: 'u2',
    sourceIp: '192.0.2.1',
    result: 'success',
    details: '{}',
  };
  it('is SHA-256 hex, depends on prev_hash and on every field', () => {
    const h = auditRowHash(AUDIT_GENESIS_HASH, fields);
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.notEqual(auditRowHash('1'.repeat(64), fields), h);
    const variants: Partial<HashedFields>[] = [
      { id: '8' },
      { at: new Date(fields.at.getTime() + 1) },
      { actor: 'u3' },
      { action: 'user_updated' },
      { target: null },
      { sourceIp: null },
      { result: 'failure' },
      { details: '{"a":1}' },
    ];
    for (const v of variants) assert.notEqual(auditRowHash(AUDIT_GENESIS_HASH, { ...fields, ...v }), h, JSON.stringify(v));
  });
  it('does not confuse a field boundary (actor "a|b" vs actor "a", target "b")', () => {
    assert.notEqual(auditRowHash(AUDIT_GENESIS_HASH, { ...fields, actor: 'a,b', target: null }), auditRowHash(AUDIT_GENESIS_HASH, { ...fields, actor: 'a', target: 'b' }));
  });
});

describe('audit vocabulary and events', () => {
  it('every action fits the audit_log CHECK constraint; none repeats', () => {
    for (const a of AUDIT_ACTIONS) assert.match(a, AUDIT_ACTION_PATTERN);
    assert.equal(new Set(AUDIT_ACTIONS).size, AUDIT_ACTIONS.length);
    assert.ok(isAuditAction('authn_login_fail'));
    assert.ok(!isAuditAction('login'));
  });

  it('maps a row to the plugin AuditEvent (anonymous → null actor)', () => {
    const row = {
      id: '3',
      at: new Date('2026-01-02T03:04:05.678Z'),
      actor: 'anonymous',
      action: 'authn_login_fail',
      target: 'bob',
      sourceIp: '::1',
      result: 'failure' as const,
      details: {},
      prevHash: AUDIT_GENESIS_HASH,
      hash: 'f'.repeat(64),
    };
    assert.deepEqual(toAuditEvent(row), { id: '3', at: '2026-01-02T03:04:05.678Z', actor: null, action: 'authn_login_fail', target: 'bob', ip: '::1', result: 'failure' });
  });

  const ips: { desc: string; input: string | null; value: string | null; invalid?: string }[] = [
    { desc: 'IPv4', input: '203.0.113.9', value: '203.0.113.9' },
    { desc: 'IPv6', input: '2001:db8::1', value: '2001:db8::1' },
    { desc: 'IPv4-mapped IPv6 becomes IPv4', input: '::ffff:10.0.0.1', value: '10.0.0.1' },
    { desc: 'zone id dropped', input: 'fe80::1%eth0', value: 'fe80::1' },
    { desc: 'none', input: null, value: null },
    { desc: 'garbage is kept aside', input: "1.2.3.4'; DROP", value: null, invalid: "1.2.3.4'; DROP" },
  ];
  for (const c of ips) {
    it(`source IP: ${c.desc}`, () => {
      assert.deepEqual(normalizeIp(c.input), c.invalid === undefined ? { value: c.value } : { value: c.value, invalid: c.invalid });
    });
  }
});

describe('audit query validation', () => {
  it('applies defaults and coerces a string limit', () => {
    assert.deepEqual(parseAuditQuery({}), { limit: 100 });
    assert.equal(parseAuditQuery({ limit: '500' }).limit, 500);
    const q = parseAuditQuery({ from: '2026-01-01T00:00:00+02:00', to: new Date('2026-01-02T00:00:00Z') });
    assert.equal(q.from?.toISOString(), '2025-12-31T22:00:00.000Z');
  });

  const bad: { desc: string; input: unknown; field: string }[] = [
    { desc: 'limit over 500', input: { limit: 501 }, field: 'limit' },
    { desc: 'limit zero', input: { limit: '0' }, field: 'limit' },
    { desc: 'limit not a number', input: { limit: 'ten' }, field: 'limit' },
    { desc: 'unknown key', input: { usr: 'x' }, field: 'query' },
    { desc: 'action of the wrong shape', input: { action: 'DROP TABLE' }, field: 'action' },
    { desc: 'repeated query parameter', input: { user: ['a', 'b'] }, field: 'user' },
    { desc: 'time that is not ISO 8601', input: { from: 'yesterday' }, field: 'from' },
    { desc: 'from after to', input: { from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' }, field: 'to' },
    { desc: 'forged cursor', input: { cursor: Buffer.from('a1:1 OR 1=1').toString('base64url') }, field: 'cursor' },
    { desc: 'empty user', input: { user: '' }, field: 'user' },
  ];
  for (const c of bad) {
    it(`refuses ${c.desc}`, () => {
      assert.throws(
        () => parseAuditQuery(c.input),
        (err: unknown) => err instanceof AppError && err.code === 'VALIDATION_FAILED' && err.status === 400 && err.message.includes(`${c.field}:`),
      );
    });
  }
});
