import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { errorCode, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';

/*
 * Lockout denial of service (reliability A6, issue 11) through the real edge and control, on
 * Postgres and Redis, with the DEFAULT limits: an attacker who keeps guessing one account's
 * password from many addresses must not keep its user out. Client addresses are spread over
 * 127/8 (all loopback); the edge passes the socket's address on as the client IP.
 */

const retryAfter = (r: ApiResponse) => Number(r.headers['retry-after']);

interface AuditRow {
  actor: string;
  action: string;
  target: string | null;
  source_ip: string | null;
  details: Record<string, unknown>;
}

async function auditRows(api: TestApi, action: string): Promise<AuditRow[]> {
  const r = await api.request('GET', `/v1/audit?action=${action}&limit=500`, { token: await api.adminToken() });
  assert.equal(r.status, 200, r.text);
  return (r.json as { items: AuditRow[] }).items;
}

/** Resolves once `pred` holds, polling every 50 ms; fails after `ms`. */
async function waitFor(pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * An attacker guessing `username`'s password from 50 addresses (127.0.4.2–127.0.4.51), 10
 * requests at a time, until stopped.
 */
function attack(api: TestApi, username: string) {
  const agents = Array.from({ length: 50 }, () => new https.Agent({ keepAlive: true, maxSockets: 1 }));
  const results: ApiResponse[] = [];
  let running = true;
  let n = 0;
  const workers = Array.from({ length: 10 }, async () => {
    while (running) {
      const i = n++;
      const r = await api.request('POST', '/v1/login', {
        body: { username, password: `guess number ${i}` },
        localAddress: `127.0.4.${(i % 50) + 2}`,
        agent: agents[i % 50] as https.Agent,
      });
      results.push(r);
    }
  });
  return {
    results,
    async stop() {
      running = false;
      await Promise.all(workers);
      for (const a of agents) a.destroy();
    },
  };
}

describe('A6: no lockout denial of service (default limits, postgres + redis)', () => {
  let api: TestApi;
  let victimId: string;
  const evaluations = () => api.gw.app.control.hasher.evaluations;
  const HOME = '127.0.3.1';
  const login = (username: string, password: string, from: string) => api.request('POST', '/v1/login', { body: { username, password }, localAddress: from });

  before(async () => {
    api = await startApi({ kv: 'redis', db: 'postgres' });
    await api.adminToken();
    victimId = await api.createUser('victim', 'the victim password');
    await api.createUser('walker', 'the walker password');
  });
  after(async () => {
    await api?.close();
  });

  it('while an attacker keeps going from 50 addresses, the user logs in from their usual address at once; hashing stays ≤ 10 for the attacker', async () => {
    // The user logged in from their usual address earlier (it is known for 30 days).
    assert.equal((await login('victim', 'the victim password', HOME)).status, 200);
    const before = evaluations();
    const attacker = attack(api, 'victim');
    try {
      // The account's limit is reached: the attacker's addresses get 429s longer than any delay.
      await waitFor(() => attacker.results.filter((r) => r.status === 429 && retryAfter(r) > 60).length >= 50, 60_000, 'the account limit');
      const typo = await login('victim', 'the victim passwort', HOME);
      assert.equal(typo.status, 401, 'a typo from home is checked, not refused');
      const t0 = Date.now();
      const real = await login('victim', 'the victim password', HOME);
      assert.equal(real.status, 200, real.text);
      assert.ok(Date.now() - t0 < 60_000);
      // The attacker is still at it after the user got in.
      const seen = attacker.results.length;
      await waitFor(() => attacker.results.length >= seen + 100, 60_000, '100 more attempts');
    } finally {
      await attacker.stop();
    }
    const { results } = attacker;
    const hashed = evaluations() - before - 2;
    const by = (s: number) => results.filter((r) => r.status === s);
    process.stdout.write(`# A6: ${results.length} attempts: ${hashed} hash evaluations for the attacker, ${by(401).length}×401, ${by(429).length}×429\n`);
    assert.ok(hashed <= 10, `${hashed} evaluations for the attacker (A4's bound)`);
    assert.equal(by(401).length, hashed, 'every 401 was a real check');
    assert.equal(by(401).length + by(429).length, results.length);
    for (const r of by(429)) {
      assert.equal(errorCode(r), 'RATE_LIMITED');
      assert.ok(retryAfter(r) >= 1 && retryAfter(r) <= 900, `Retry-After ${String(r.headers['retry-after'])}`);
    }
    const locks = (await auditRows(api, 'authn_login_lock')).filter((row) => row.target === 'victim');
    assert.equal(locks.length, 1, 'the lock is audited once, not per attempt');
  });

  it('an unknown address is slowed by growing delays (≤ 60 s), never locked for 15 minutes; others still get in', async () => {
    const from = '127.0.5.1';
    const statuses = [];
    for (let i = 0; i < 2; i++) statuses.push((await login('walker', `wrong ${i}`, from)).status);
    assert.deepEqual(statuses, [401, 401], 'the first failure costs no delay');
    const waits: number[] = [];
    let last: ApiResponse | undefined;
    for (const password of ['wrong again', 'the walker password']) {
      const held = await login('walker', 'the walker password', from);
      assert.equal(held.status, 429);
      assert.equal(errorCode(held), 'RATE_LIMITED');
      waits.push(retryAfter(held));
      assert.equal((await login('walker', 'the walker password', '127.0.5.2')).status, 200, 'another address is not held');
      // The delay lifts by itself: poll until this address may try again.
      await waitFor(async () => (last = await login('walker', password, from)).status !== 429, 5_000, 'the delay to lift');
    }
    assert.deepEqual(waits, [1, 2], 'the delay doubles with consecutive failures');
    assert.equal(last?.status, 200, 'the right password gets in after the delay');
  });

  it('the admin unlock clears an account\'s lock at once and is audited; only for admins', async () => {
    const NEW = '127.0.6.1';
    const held = await login('victim', 'the victim password', NEW);
    assert.equal(held.status, 429, 'a new address is held by the account limit after the attack');
    assert.ok(retryAfter(held) > 60);
    const user = (await api.login('walker', 'the walker password', { localAddress: '127.0.5.2' })).access_token;
    const admin = await api.adminToken();
    const unlock = (id: string, token: string | undefined, body: unknown = {}) => api.request('POST', `/v1/users/${id}/unlock`, { ...(token ? { token } : {}), body });
    for (const [desc, r, status, code] of [
      ['anonymous', await unlock(victimId, undefined), 401, 'AUTH_REQUIRED'],
      ['a user', await unlock(victimId, user), 403, 'FORBIDDEN'],
      ['an unknown id', await unlock('00000000-0000-4000-8000-000000000000', admin), 404, 'NOT_FOUND'],
      ['not an id', await unlock('nope', admin), 404, 'NOT_FOUND'],
      ['an unknown field', await unlock(victimId, admin, { force: true }), 400, 'VALIDATION_FAILED'],
    ] as const) {
      assert.equal(r.status, status, `${desc}: ${r.text}`);
      assert.equal(errorCode(r), code, desc);
    }
    assert.equal((await login('victim', 'the victim password', NEW)).status, 429, 'refused unlocks changed nothing');
    const ok = await unlock(victimId, admin, { reason: 'ticket 42' });
    assert.equal(ok.status, 204, ok.text);
    const rows = (await auditRows(api, 'user_updated')).filter((row) => row.target === victimId && row.details.loginUnlocked === true);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.details.reason, 'ticket 42');
    assert.equal(rows[0]?.details.username, 'victim');
    assert.equal((await login('victim', 'the victim password', NEW)).status, 200, 'the new address gets in at once');
  });
});
