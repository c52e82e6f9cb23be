import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { errorCode, startApi, type ApiResponse, type TestApi } from '../helpers/api.js';

/*
 * Hostile and malformed input through the gateway: every answer is JSON {error: {code,
 * message}} with the right status, and nothing reaches the database unchecked.
 */

const RELAXED = { throttle: { accountShortLimit: 1_000, accountLongLimit: 1_000, ipFailLimit: 1_000 } };

/** A chunked request (no Content-Length) whose body is `size` bytes of JSON-ish text. */
function chunked(api: TestApi, path: string, size: number, token?: string): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: api.port,
        path,
        method: 'POST',
        ca: api.gw.ca,
        servername: PUBLIC_HOST,
        agent: false,
        headers: { host: PUBLIC_HOST, 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: JSON.parse(text) as unknown }));
      },
    );
    req.on('error', reject);
    const chunk = Buffer.alloc(16 * 1024, 'a');
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    req.write('{"username":"');
    pump();
  });
}

describe('bad input', () => {
  let api: TestApi;
  let admin: string;
  let userId: string;
  before(async () => {
    api = await startApi({ auth: RELAXED });
    admin = await api.adminToken();
    userId = await api.createUser('valerie', 'valerie password');
  });
  after(async () => {
    await api?.close();
  });

  const json = (raw: string) => ({ raw, headers: { 'content-type': 'application/json' } });

  it('answers malformed, mistyped and unexpected bodies with 400, 413 or 415 and a JSON error', async () => {
    const big = JSON.stringify({ username: 'x'.repeat(1_100_000), password: 'y' });
    const cases: { desc: string; path?: string; opts: Parameters<TestApi['request']>[2]; status: number; code: string }[] = [
      { desc: 'malformed JSON', opts: json('{"username": "a",'), status: 400, code: 'BAD_REQUEST' },
      { desc: 'JSON with a trailing comma', opts: json('{"username":"a","password":"b",}'), status: 400, code: 'BAD_REQUEST' },
      { desc: 'invalid UTF-8', opts: { raw: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), headers: { 'content-type': 'application/json' } }, status: 400, code: 'BAD_REQUEST' },
      { desc: 'an array', opts: json('[]'), status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'a number', opts: json('42'), status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'null', opts: json('null'), status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'no body', opts: {}, status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'username a number', opts: { body: { username: 42, password: 'x' } }, status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'password an array', opts: { body: { username: 'a', password: ['x'] } }, status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'an unknown field', opts: { body: { username: 'a', password: 'b', admin: true } }, status: 400, code: 'VALIDATION_FAILED' },
      { desc: '__proto__ smuggling', opts: json('{"username":"a","password":"b","__proto__":{"role":"admin"}}'), status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'a 257-character username', opts: { body: { username: 'u'.repeat(257), password: 'b' } }, status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'a 5000-character password', opts: { body: { username: 'a', password: 'p'.repeat(5_000) } }, status: 400, code: 'VALIDATION_FAILED' },
      { desc: 'text/plain', opts: { raw: '{"username":"a","password":"b"}', headers: { 'content-type': 'text/plain' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
      { desc: 'form-encoded', opts: { raw: 'username=a&password=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
      { desc: 'a 1.1 MB body', opts: json(big), status: 413, code: 'PAYLOAD_TOO_LARGE' },
      { desc: 'a 1.1 MB body to an admin route, anonymously (refused before auth)', path: '/v1/users', opts: json(big), status: 413, code: 'PAYLOAD_TOO_LARGE' },
      { desc: 'a body on a route that takes none', path: '/v1/logout', opts: { token: admin, body: { everywhere: true } }, status: 400, code: 'VALIDATION_FAILED' },
    ];
    for (const c of cases) {
      const r = await api.request('POST', c.path ?? '/v1/login', c.opts);
      assert.equal(r.status, c.status, `${c.desc}: ${r.text.slice(0, 200)}`);
      assert.equal(errorCode(r), c.code, c.desc);
      assert.equal(typeof (r.json as { error: { message: unknown } }).error.message, 'string');
    }
    assert.equal((await api.request('GET', '/v1/me', { token: admin })).status, 200, 'the admin session survived the refused logout');
  });

  it('cuts a chunked body (no Content-Length) at the limit with 413', async () => {
    const r = await chunked(api, '/v1/login', 1_100_000);
    assert.equal(r.status, 413);
    assert.equal(errorCode(r), 'PAYLOAD_TOO_LARGE');
    assert.equal((await api.request('GET', '/health')).status, 200);
  });

  it('validates query strings strictly', async () => {
    const cases: { path: string; status: number }[] = [
      { path: '/v1/users?limit=abc', status: 400 },
      { path: '/v1/users?limit=0', status: 400 },
      { path: '/v1/users?limit=201', status: 400 },
      { path: '/v1/users?limit=5&limit=6', status: 400 },
      { path: '/v1/users?bogus=1', status: 400 },
      { path: '/v1/users?cursor=not-a-cursor', status: 400 },
      { path: '/v1/me?x=1', status: 400 },
      { path: '/v1/audit?from=yesterday', status: 400 },
      { path: '/v1/audit?action=DROP%20TABLE', status: 400 },
      { path: '/v1/audit?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z', status: 400 },
      { path: '/v1/users?limit=2', status: 200 },
    ];
    for (const c of cases) {
      const r = await api.request('GET', c.path, { token: admin });
      assert.equal(r.status, c.status, `${c.path}: ${r.text}`);
      if (c.status === 400) assert.equal(errorCode(r), 'VALIDATION_FAILED', c.path);
    }
  });

  it('treats SQL and control characters as plain data (stored and exported escaped, D5)', async () => {
    const nasty = ["' OR '1'='1", "admin'--", 'x"; DROP TABLE users; --', 'a\nFAKE LOG\u001b[31m', '\u0000nul', 'ok\u202eevil'];
    for (const username of nasty) {
      const r = await api.request('POST', '/v1/login', { body: { username, password: "' OR 1=1 --" } });
      assert.equal(r.status, 401, username);
      const c = await api.request('POST', '/v1/users', { token: admin, body: { username, password: 'some fine password' } });
      assert.equal(c.status, 400, `create ${JSON.stringify(username)}`);
    }
    const users = (await api.request('GET', '/v1/users', { token: admin })).json as { items: { username: string }[] };
    assert.deepEqual(users.items.map((u) => u.username).sort(), ['root-admin', 'valerie'], 'the users table is intact');
    const audit = (await api.request('GET', `/v1/audit?action=authn_login_fail&limit=50`, { token: admin })).json as { items: { target: string }[] };
    const targets = audit.items.map((i) => i.target);
    assert.ok(targets.includes('a\\nFAKE LOG\\u001b[31m'), JSON.stringify(targets));
    assert.ok(targets.every((t) => !/[\u0000-\u001f\u007f\u202e]/.test(t)), 'no raw control characters exported');
    for (const q of ["' OR 1=1 --", "x'); DROP TABLE audit_log; --"]) {
      const r = await api.request('GET', `/v1/audit?user=${encodeURIComponent(q)}`, { token: admin });
      assert.equal(r.status, 200);
      assert.deepEqual((r.json as { items: unknown[] }).items, []);
    }
    for (const id of ["1' OR '1'='1", '00000000-0000-0000-0000-000000000000', 'not-a-uuid', '%00']) {
      const r = await api.request('PATCH', `/v1/users/${encodeURIComponent(id)}`, { token: admin, body: { disabled: true } });
      assert.equal(r.status, 404, id);
      assert.equal(errorCode(r), 'NOT_FOUND');
    }
  });

  it('creates users only with valid fields; usernames are unique case-insensitively; weak passwords refused; a refused create leaves no audit row', async () => {
    const created = async () => ((await api.request('GET', '/v1/audit?action=user_created&limit=500', { token: admin })).json as { items: unknown[] }).items.length;
    const before = await created();
    const cases: { body: unknown; status: number; code: string }[] = [
      { body: { username: 'VALERIE', password: 'another fine password' }, status: 409, code: 'CONFLICT' },
      { body: { username: 'newbie', password: 'password1' }, status: 400, code: 'PASSWORD_POLICY' },
      { body: { username: 'newbie', password: 'short' }, status: 400, code: 'PASSWORD_POLICY' },
      { body: { username: 'newbie', password: 'p'.repeat(1_025) }, status: 400, code: 'PASSWORD_POLICY' },
      { body: { username: 'newbie', password: 'newbie' + 'x', role: 'root' }, status: 400, code: 'VALIDATION_FAILED' },
      { body: { username: 'n'.repeat(65), password: 'a fine password' }, status: 400, code: 'VALIDATION_FAILED' },
      { body: { username: 'newbie', password: 'a fine password', quota: { max_sessions: -1 } }, status: 400, code: 'VALIDATION_FAILED' },
      { body: { username: 'newbie', password: 'a fine password', quota: { gpus: 1 } }, status: 400, code: 'VALIDATION_FAILED' },
      { body: { username: 'newbie', password: 'a fine password', quota: { max_sessions: 1, cpus: 0.5 } }, status: 201, code: '' },
    ];
    for (const c of cases) {
      const r = await api.request('POST', '/v1/users', { token: admin, body: c.body });
      assert.equal(r.status, c.status, `${JSON.stringify(c.body).slice(0, 80)}: ${r.text}`);
      if (c.code) assert.equal(errorCode(r), c.code);
    }
    // The 409 rolled back inside the transaction that also held its audit row: only the 201 is audited.
    assert.equal(await created(), before + 1);
  });

  it('PATCH: needs a field, checks quota bounds, null clears an override; the last admin stays', async () => {
    const path = `/v1/users/${userId}`;
    assert.equal((await api.request('PATCH', path, { token: admin, body: {} })).status, 400);
    assert.equal((await api.request('PATCH', path, { token: admin, body: { quota: { memory_mb: 1 } } })).status, 400);
    const set = await api.request('PATCH', path, { token: admin, body: { quota: { memory_mb: 4096, idle_timeout_minutes: 5 } } });
    assert.deepEqual((set.json as { quota: object }).quota, { memory_mb: 4096, idle_timeout_minutes: 5 });
    const cleared = await api.request('PATCH', path, { token: admin, body: { quota: { memory_mb: null } } });
    assert.deepEqual((cleared.json as { quota: object }).quota, { idle_timeout_minutes: 5 });
    const me = (await api.request('GET', '/v1/me', { token: admin })).json as { id: string };
    for (const body of [{ disabled: true }, { role: 'user' }]) {
      const r = await api.request('PATCH', `/v1/users/${me.id}`, { token: admin, body });
      assert.equal(r.status, 409, JSON.stringify(body));
      assert.match((r.json as { error: { message: string } }).error.message, /last enabled administrator/);
    }
  });

  it('speaks snake_case only: the old camelCase keys are refused with 400 VALIDATION_FAILED, never ignored (issue 16)', async () => {
    const login = await api.request('POST', '/v1/login', { body: { username: 'valerie', password: 'valerie password' } });
    assert.equal(login.status, 200, login.text);
    const pair = login.json as Record<string, unknown>;
    assert.deepEqual(Object.keys(pair).sort(), ['access_token', 'expires_in', 'refresh_expires_at', 'refresh_token', 'token_type']);
    const refreshToken = String(pair.refresh_token);
    const old = [
      ['POST', '/v1/token/refresh', { refreshToken }, /"refreshToken"/],
      ['POST', '/v1/login/second-factor', { challengeId: 'x', factor: 'totp', response: '123456' }, /"challengeId"/],
      ['POST', '/v1/auth/flows/any/device/poll', { deviceId: 'x' }, /"deviceId"/],
      ['POST', '/v1/users', { username: 'camel', password: 'camel password 1', quota: { maxSessions: 2 } }, /body\.quota: .*"maxSessions"/],
      ['PATCH', `/v1/users/${userId}`, { quota: { memoryMb: 2048 } }, /body\.quota: .*"memoryMb"/],
    ] as const;
    for (const [method, path, body, names] of old) {
      const r = await api.request(method, path, { token: admin, body });
      assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.equal(errorCode(r), 'VALIDATION_FAILED');
      assert.match((r.json as { error: { message: string } }).error.message, names, 'the message names the refused key');
    }
    // The camelCase refresh did not spend the token: the snake_case one still trades it.
    const refreshed = await api.request('POST', '/v1/token/refresh', { body: { refresh_token: refreshToken } });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.deepEqual(Object.keys(refreshed.json as object).sort(), ['access_token', 'expires_in', 'refresh_expires_at', 'refresh_token', 'token_type']);
  });

  it('answers unknown paths 404 and wrong methods 405, as JSON', async () => {
    const notFound = await api.request('GET', '/v1/nothing-here');
    assert.equal(notFound.status, 404);
    assert.deepEqual(notFound.json, { error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
    const wrong = await api.request('DELETE', '/v1/me', { token: admin });
    assert.equal(wrong.status, 405);
    assert.equal(errorCode(wrong), 'METHOD_NOT_ALLOWED');
    assert.match(String(wrong.headers.allow), /GET/);
    assert.equal((await api.request('PUT', '/v1/login')).status, 405);
    const odd = await api.request('PROPFIND', '/v1/me');
    assert.ok([405, 501].includes(odd.status));
    assert.ok(errorCode(odd));
  });

  it('echoes a well-formed X-Request-Id and replaces a malformed one', async () => {
    const mine = await api.request('GET', '/health', { headers: { 'x-request-id': 'client-req-12345' } });
    assert.equal(mine.headers['x-request-id'], 'client-req-12345');
    const bad = await api.request('GET', '/health', { headers: { 'x-request-id': 'not/a valid id' } });
    // Replaced by the edge with one of its own, which control keeps (and answers with).
    assert.match(String(bad.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-z]{6,}$/);
    const other = await api.request('GET', '/health');
    assert.notEqual(other.headers['x-request-id'], bad.headers['x-request-id'], 'every request gets its own id');
  });
});
