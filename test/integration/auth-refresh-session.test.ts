import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { errorCode, startApi, type TestApi, type TokenPair } from '../helpers/api.js';

/*
 * Issue 13's refresh policy (docs/decisions.md, "A session being watched keeps its login"):
 * a refresh token past its idle lifetime still works while its user has a running session
 * that began while the login was alive; never past the family's absolute end. Sessions are
 * rows here (the policy reads only the table); test/e2e/client-network.test.ts drives it
 * with a real session and client.
 */

const IDLE_MS = 1_500;
const ABSOLUTE_MS = 12_000;
let api: TestApi;
let db: pg.Client;
let userId: string;
const USER = { username: 'refresh-keeper', password: 'Refresh-Keeper-Pass-31' };

before(async () => {
  api = await startApi({ db: 'postgres', kv: 'redis', auth: { refreshIdleMs: IDLE_MS, refreshAbsoluteMs: ABSOLUTE_MS } });
  userId = await api.createUser(USER.username, USER.password);
  db = new pg.Client({ connectionString: api.databaseUrl });
  await db.connect();
});

after(async () => {
  await db?.end();
  await api?.close();
});

/** Resolves once the clock is past `iso` (the refresh token's idle end, as the server said). */
async function past(iso: string): Promise<void> {
  while (Date.now() <= Date.parse(iso) + 50) await new Promise((r) => setTimeout(r, Math.max(10, Date.parse(iso) + 60 - Date.now())));
}

async function session(state: 'ready' | 'connected' | 'idle' | 'stopped'): Promise<string> {
  const r = await db.query<{ id: string }>(
    `INSERT INTO sessions (user_id, state, app, profile, quality, ended_at) VALUES ($1, $2, 'firefox', 'ephemeral', 'low', $3) RETURNING id`,
    [userId, state, state === 'stopped' ? new Date() : null],
  );
  return r.rows[0]!.id;
}

const refresh = (p: TokenPair) => api.request('POST', '/v1/token/refresh', { body: { refresh_token: p.refresh_token } });

describe('refresh tokens and running sessions', () => {
  it('a login unused past its idle lifetime, with no running session, is refused', async () => {
    await db.query('DELETE FROM sessions WHERE user_id = $1', [userId]);
    const p = await api.login(USER.username, USER.password);
    await session('stopped');
    await past(p.refresh_expires_at);
    const r = await refresh(p);
    assert.equal(r.status, 401, r.text);
    assert.equal(errorCode(r), 'AUTH_TOKEN_INVALID');
  });

  for (const state of ['connected', 'idle', 'ready'] as const) {
    it(`${state === 'idle' ? 'an' : 'a'} ${state} session that began while the login was alive keeps it past the idle lifetime, audited`, async () => {
      await db.query('DELETE FROM sessions WHERE user_id = $1', [userId]);
      const p = await api.login(USER.username, USER.password);
      const id = await session(state);
      await past(p.refresh_expires_at);
      const r = await refresh(p);
      assert.equal(r.status, 200, r.text);
      const audit = await db.query<{ details: { keptBySession?: string } }>(
        `SELECT details FROM audit_log WHERE action = 'authn_token_refreshed' AND target = $1 ORDER BY id DESC LIMIT 1`,
        [userId],
      );
      assert.equal(audit.rows[0]?.details.keptBySession, id);
    });
  }

  it('a session started after the login had already gone idle does not bring it back', async () => {
    await db.query('DELETE FROM sessions WHERE user_id = $1', [userId]);
    const p = await api.login(USER.username, USER.password);
    await past(p.refresh_expires_at);
    await session('connected');
    const r = await refresh(p);
    assert.equal(r.status, 401, r.text);
  });

  it('never past the absolute lifetime, session or not', async () => {
    await db.query('DELETE FROM sessions WHERE user_id = $1', [userId]);
    // The server's end is at least this (it starts counting after this moment).
    const familyEnd = Date.now() + ABSOLUTE_MS;
    const first = await api.login(USER.username, USER.password);
    await session('connected');
    let p = first;
    // Kept alive by the session all along (each refresh is past the idle end), until the family ends.
    for (;;) {
      await past(p.refresh_expires_at);
      const r = await refresh(p);
      if (r.status !== 200) {
        assert.equal(r.status, 401, r.text);
        assert.ok(Date.now() >= familyEnd, `refused before the family's end: ${r.text}`);
        break;
      }
      p = r.json as TokenPair;
    }
  });
});
