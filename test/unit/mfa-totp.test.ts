import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import type { AccountView, PluginAuditEntry, PluginRegistrar, PluginStorage, SecondFactor } from '../../core/plugin/contract.js';
import mfaTotp from '../../plugins/mfa-totp/index.js';
import { migrations } from '../../plugins/mfa-totp/migrations.js';
import { totpOptions, type TotpOptionsInput } from '../../plugins/mfa-totp/options.js';
import { secretBox } from '../../plugins/mfa-totp/secret-box.js';
import { factorStore } from '../../plugins/mfa-totp/store.js';
import { TotpService, type Actor } from '../../plugins/mfa-totp/totp.js';
import { oathtoolCode, STEP_MS } from '../helpers/oathtool.js';
import { dropSchema, TEST_DATABASE_URL } from '../helpers/store.js';
import { scratchDirs } from '../helpers/tmp.js';

/**
 * A test stand-in for the host's PluginStorage (not a mock): real PostgreSQL, a temporary
 * schema on the search path with the plugin's migrations applied. KV is not used by mfa-totp.
 */
async function testPluginStorage(schema: string): Promise<{ storage: PluginStorage; pool: pg.Pool }> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  for (const m of migrations) await pool.query(m.up);
  const query = async <Row extends Record<string, unknown>>(q: pg.Pool | pg.PoolClient, text: string, params?: readonly unknown[]): Promise<Row[]> =>
    (await q.query<Row>(text, params ? [...params] : undefined)).rows;
  const unused = () => Promise.reject(new Error('kv is not used by mfa-totp'));
  const storage: PluginStorage = {
    dir: null,
    sql: {
      query: (text, params) => query(pool, text, params),
      async transaction(work) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const out = await work({ query: (text, params) => query(client, text, params) });
          await client.query('COMMIT');
          return out;
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        } finally {
          client.release();
        }
      },
    },
    kv: { get: unused, set: unused, setIfAbsent: unused, delete: unused },
  };
  return { storage, pool };
}

const schema = `t_mfa_${randomBytes(5).toString('hex')}`;
let pool: pg.Pool;
let storage: PluginStorage;
const audit: PluginAuditEntry[] = [];
const logLines: string[] = [];
const accounts = new Map<string, AccountView>();
/** The service's clock: mid-way through a real 30 s step, moved by tests. */
let clock = Math.floor(Date.now() / STEP_MS) * STEP_MS + STEP_MS / 2;

function service(opts: TotpOptionsInput = {}): TotpService {
  const logger = pino({ level: 'debug' }, new Writable({ write: (c: Buffer, _e, cb) => (logLines.push(c.toString()), cb()) }));
  return new TotpService({
    store: factorStore(storage.sql),
    box: secretBox(Buffer.alloc(32, 3)),
    options: totpOptions.parse({ issuer: 'Acme Labs', ...opts }),
    accounts: { findById: async (id) => accounts.get(id) ?? null },
    // A recording stand-in for services.audit: the integration test checks the real audit rows.
    audit: { record: async (e) => void audit.push(e) },
    logger,
    now: () => clock,
  });
}

function newUser(role: 'admin' | 'user' = 'user'): Actor {
  const userId = randomUUID();
  const username = `u-${userId.slice(0, 8)}`;
  accounts.set(userId, { id: userId, username, role, disabled: false, source: null });
  return { userId, username, ip: '127.0.0.9' };
}

const subject = (a: Actor, provider = 'auth-local') => ({ userId: a.userId, username: a.username, provider, ip: a.ip });

/** A confirmed user; the confirmation used the code of `clock + confirmAtMs`. */
async function enrolled(svc: TotpService, confirmAtMs = -10 * 60_000): Promise<{ actor: Actor; secret: string; recoveryCodes: string[] }> {
  const actor = newUser();
  const saved = clock;
  clock += confirmAtMs;
  try {
    const e = await svc.enrol(actor);
    assert.ok(e.ok);
    const c = await svc.confirm(actor, await oathtoolCode(e.value.secret, clock));
    assert.ok(c.ok, 'confirm with the current code');
    return { actor, secret: e.value.secret, recoveryCodes: c.value.recoveryCodes };
  } finally {
    clock = saved;
  }
}

before(async () => ({ storage, pool } = await testPluginStorage(schema)));
after(async () => {
  await pool.end();
  await dropSchema(schema);
});

describe('mfa-totp enrolment', () => {
  it('gives a secret, an otpauth URI (issuer, username) and a QR code; pending does not count', async () => {
    const svc = service();
    const actor = newUser();
    const e = await svc.enrol(actor);
    assert.ok(e.ok);
    assert.match(e.value.secret, /^[A-Z2-7]{32}$/);
    const uri = new URL(e.value.otpauthUri);
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(decodeURIComponent(uri.pathname), `/Acme Labs:${actor.username}`);
    assert.equal(uri.searchParams.get('secret'), e.value.secret);
    assert.equal(uri.searchParams.get('issuer'), 'Acme Labs');
    assert.match(e.value.qrPng, /^data:image\/png;base64,[A-Za-z0-9+/=]{200,}$/);
    assert.match(e.value.qrSvg, /^<svg[\s\S]*<\/svg>\s*$/);
    assert.deepEqual(await svc.status(actor.userId), { enrolled: false, pending: true, confirmedAt: null, recoveryCodesLeft: 0 });
    const factor: SecondFactor = svc.secondFactor();
    assert.equal(await factor.required(subject(actor)), false, 'an unconfirmed enrolment does not count');
    const v = await factor.verify(subject(actor), await oathtoolCode(e.value.secret, clock));
    assert.deepEqual(v, { ok: false, reason: 'not-enrolled' });
  });

  it('confirms only with a right code, then returns 10 recovery codes once and is required', async () => {
    const svc = service();
    const actor = newUser();
    const e = await svc.enrol(actor);
    assert.ok(e.ok);
    const wrong = String((Number(await oathtoolCode(e.value.secret, clock)) + 1) % 1e6).padStart(6, '0');
    assert.deepEqual(await svc.confirm(actor, wrong), { ok: false, refusal: 'wrong-code' });
    assert.equal((await svc.status(actor.userId)).enrolled, false);
    const c = await svc.confirm(actor, await oathtoolCode(e.value.secret, clock));
    assert.ok(c.ok);
    assert.equal(c.value.recoveryCodes.length, 10);
    const s = await svc.status(actor.userId);
    assert.equal(s.enrolled, true);
    assert.equal(s.recoveryCodesLeft, 10);
    assert.equal(await svc.secondFactor().required(subject(actor)), true);
    assert.deepEqual(await svc.confirm(actor, await oathtoolCode(e.value.secret, clock)), { ok: false, refusal: 'already-enrolled' });
    assert.deepEqual(await svc.enrol(actor), { ok: false, refusal: 'already-enrolled' }, 'a confirmed factor is not replaced');
  });

  it('refuses to confirm a pending enrolment older than 15 minutes', async () => {
    const svc = service();
    const actor = newUser();
    const e = await svc.enrol(actor);
    assert.ok(e.ok);
    const saved = clock;
    clock += 16 * 60_000;
    try {
      assert.deepEqual(await svc.confirm(actor, await oathtoolCode(e.value.secret, clock)), { ok: false, refusal: 'enrolment-expired' });
    } finally {
      clock = saved;
    }
  });

  it('keeps the secret encrypted in the database', async () => {
    const svc = service();
    const actor = newUser();
    const e = await svc.enrol(actor);
    assert.ok(e.ok);
    const { rows } = await pool.query<{ s: Buffer }>('SELECT secret_sealed AS s FROM factors WHERE user_id = $1', [actor.userId]);
    assert.ok(rows[0] && !rows[0].s.toString('latin1').includes(e.value.secret.slice(0, 8)));
  });
});

describe('mfa-totp second factor', () => {
  const offsets = [
    { what: '-90 s', offsetS: -90, ok: false },
    { what: '+90 s', offsetS: 90, ok: false },
    { what: '-30 s', offsetS: -30, ok: true },
    { what: '0 s', offsetS: 0, ok: true },
    { what: '+30 s', offsetS: 30, ok: true },
  ];
  it('accepts codes of -30 s, 0 and +30 s (oathtool), refuses -90 s and +90 s; each code once', async () => {
    const svc = service();
    const { actor, secret } = await enrolled(svc);
    const factor = svc.secondFactor();
    // In this order: later steps after earlier ones, so only the window can refuse ±90 s.
    for (const c of offsets) {
      const code = await oathtoolCode(secret, clock + c.offsetS * 1000);
      const v = await factor.verify(subject(actor), code);
      assert.deepEqual(v, c.ok ? { ok: true } : { ok: false, reason: 'wrong-code' }, c.what);
    }
    const replay = await factor.verify(subject(actor), await oathtoolCode(secret, clock + 30_000));
    assert.deepEqual(replay, { ok: false, reason: 'code-already-used' });
    const older = await factor.verify(subject(actor), await oathtoolCode(secret, clock));
    assert.deepEqual(older, { ok: false, reason: 'code-already-used' }, 'a step before the last accepted one');
  });

  it('the code that confirmed the enrolment cannot log in', async () => {
    const svc = service();
    const { actor, secret } = await enrolled(svc, 0);
    assert.deepEqual(await svc.secondFactor().verify(subject(actor), await oathtoolCode(secret, clock)), { ok: false, reason: 'code-already-used' });
  });

  it('lets one of two concurrent logins with the same code through', async () => {
    const svc = service();
    const { actor, secret } = await enrolled(svc);
    const code = await oathtoolCode(secret, clock);
    const results = await Promise.all(Array.from({ length: 4 }, () => svc.secondFactor().verify(subject(actor), code)));
    assert.equal(results.filter((r) => r.ok).length, 1, JSON.stringify(results));
  });

  it('takes each recovery code once, in any case and with or without hyphens', async () => {
    const svc = service();
    const { actor, recoveryCodes } = await enrolled(svc);
    const [first = '', second = ''] = recoveryCodes;
    const factor = svc.secondFactor();
    assert.deepEqual(await factor.verify(subject(actor), first), { ok: true });
    assert.deepEqual(await factor.verify(subject(actor), first), { ok: false, reason: 'wrong-recovery-code' });
    assert.deepEqual(await factor.verify(subject(actor), ` ${second.toLowerCase().replaceAll('-', '')} `), { ok: true });
    assert.equal((await svc.status(actor.userId)).recoveryCodesLeft, 8);
    const other = await enrolled(svc);
    assert.deepEqual(await factor.verify(subject(actor), other.recoveryCodes[0] ?? ''), { ok: false, reason: 'wrong-recovery-code' }, "another user's code");
  });

  const malformed = ['', '12345', '1234567', 'abcdef', 'x'.repeat(5000), '12-34-56', '１２３４５６'];
  for (const m of malformed) {
    it(`refuses a malformed response (${JSON.stringify(m.slice(0, 12))}, ${m.length} chars)`, async () => {
      const svc = service();
      const { actor } = await enrolled(svc);
      assert.deepEqual(await svc.secondFactor().verify(subject(actor), m), { ok: false, reason: 'malformed-response' });
    });
  }

  it('applies only after the providers in its options', async () => {
    const svc = service({ providers: ['auth-ldap'] });
    const { actor } = await enrolled(svc);
    assert.equal(await svc.secondFactor().required(subject(actor, 'auth-local')), false);
    assert.equal(await svc.secondFactor().required(subject(actor, 'auth-ldap')), true);
  });
});

describe('mfa-totp admin reset', () => {
  it('removes the factor and its requirement, audited; a second reset finds nothing', async () => {
    const svc = service();
    const admin = newUser('admin');
    const { actor } = await enrolled(svc);
    assert.deepEqual(await svc.reset(admin, actor.userId), { ok: true, value: null });
    assert.equal(await svc.secondFactor().required(subject(actor)), false);
    assert.equal((await pool.query('SELECT 1 FROM recovery_codes WHERE user_id = $1', [actor.userId])).rowCount, 0);
    const row = audit.find((a) => a.action === 'mfa_totp.reset' && a.target === actor.userId);
    assert.deepEqual(row, { action: 'mfa_totp.reset', actor: admin.userId, target: actor.userId, ip: admin.ip, result: 'success' });
    assert.deepEqual(await svc.reset(admin, actor.userId), { ok: false, refusal: 'not-enrolled' });
    assert.deepEqual(await svc.reset(admin, randomUUID()), { ok: false, refusal: 'unknown-user' });
  });
});

describe('mfa-totp audit and logs', () => {
  it('never hold a secret or a code', async () => {
    const svc = service();
    const { actor, secret, recoveryCodes } = await enrolled(svc);
    const code = await oathtoolCode(secret, clock);
    await svc.secondFactor().verify(subject(actor), code);
    await svc.secondFactor().verify(subject(actor), recoveryCodes[3] ?? '');
    const text = JSON.stringify(audit) + logLines.join('');
    assert.ok(audit.some((a) => a.action === 'mfa_totp.confirm' && a.target === actor.userId));
    assert.ok(audit.some((a) => a.action === 'mfa_totp.recovery_code_used' && a.target === actor.userId));
    for (const s of [secret, code, ...recoveryCodes, ...recoveryCodes.map((c) => c.replaceAll('-', ''))]) assert.ok(!text.includes(s), 'a secret or code leaked');
  });
});

describe('mfa-totp init', () => {
  const scratch = scratchDirs('mfa-totp-init-');

  /** Runs the plugin's init on the storage stand-in; returns what it registered. */
  async function init(keyFile: string): Promise<string[]> {
    const registered: string[] = [];
    const refuse = () => {
      throw new Error('not registered by mfa-totp');
    };
    const register: PluginRegistrar = {
      authProvider: refuse,
      quotaPolicy: refuse,
      auditSink: refuse,
      sessionEvents: refuse,
      redirectFlow: refuse,
      deviceFlow: refuse,
      httpRoutes: () => void registered.push('routes'),
      secondFactor: (f) => void registered.push(`factor:${f.id}`),
    };
    const unused = () => Promise.reject(new Error('not used'));
    await mfaTotp.init({
      logger: pino({ level: 'silent' }),
      config: totpOptions.parse({ keyFile }),
      register,
      services: { accounts: { findById: unused, verifyPassword: unused }, usage: { current: unused }, audit: { record: unused } },
      storage,
    });
    return registered;
  }

  it('registers the totp factor and its routes, and refuses to start with a key file that is not the secrets\' key', async () => {
    const svc = service();
    assert.ok((await svc.enrol(newUser())).ok, 'a secret sealed with the test key exists');
    const keyFile = join(scratch(), 'totp.key');
    await writeFile(keyFile, `${Buffer.alloc(32, 3).toString('hex')}\n`, { mode: 0o600 });
    assert.deepEqual(await init(keyFile), ['factor:totp', 'routes']);
    await writeFile(keyFile, `${Buffer.alloc(32, 4).toString('hex')}\n`, { mode: 0o600 });
    await assert.rejects(init(keyFile), /is not the key the stored TOTP secrets were encrypted with/);
  });
});
