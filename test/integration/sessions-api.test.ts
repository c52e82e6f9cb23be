import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LABELS } from '../../core/sessions/runtime.js';
import type { SessionView } from '../../core/sessions/view.js';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';
import { cleanupSessions, containersOf, docker, expectError, launch, target, testSessions, waitForSession } from '../helpers/sessions.js';
import { xpraClient } from '../helpers/xpra.js';
import { xpraAttach } from '../helpers/xpra-attach.js';
import { startXvfb } from '../helpers/display.js';
import { waitFor } from '../helpers/net.js';

/*
 * The session API against a real Docker engine, the real session image and the real xpra
 * client on this host, through the real gateway (port-by-SNI).
 */
describe('sessions API (real Docker, real xpra client through the gateway)', () => {
  // Tokens live 30 s (the default): two launches and two xpra clients fit in it on a busy host.
  const sessions = testSessions({ connectTokenTtlSeconds: 30 });
  let api: TestApi;
  let alice: string;
  let bob: string;
  let bobId: string;

  before(async () => {
    api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions } });
    await api.createUser('alice', 'alice-password-1', { quota: { max_sessions: 4 } });
    bobId = await api.createUser('bob', 'bob-password-12', { quota: { max_sessions: 1 } });
    alice = (await api.login('alice', 'alice-password-1')).access_token;
    bob = (await api.login('bob', 'bob-password-12')).access_token;
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  it('launches Firefox and lets the real xpra client in once with the token, through the gateway by SNI', async () => {
    const s = await launch(api, alice, { app: 'firefox', url: 'https://example.org/', quality: 'auto' });
    assert.equal(s.state, 'ready');
    assert.equal(s.url, 'https://example.org/');
    assert.equal(s.connect.sni, `${s.session_id}.sessions.test`);
    assert.equal(s.connect.port, api.port);
    assert.match(s.connect.token, /^hsc_[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(s.connect.expires_at) - Date.now() <= 30_000);
    assert.equal(s.connect.ca_cert, api.gw.ca);

    const first = await xpraClient('info', target(api, s.connect));
    assert.equal(first.code, 0, `first use must succeed: ${first.stderr.slice(-600)}`);
    assert.match(first.stdout, /server\.|session-name|platform/);

    const second = await xpraClient('info', target(api, s.connect));
    assert.notEqual(second.code, 0, 'the same token a second time must fail');
    // xpra's EXIT_FAILURE after the server refused the login (not a TLS or connection error).
    assert.equal(second.code, 7, second.stderr.slice(-400));

    // A fresh token works once more.
    const again = await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: alice });
    assert.equal(again.status, 200);
    const fresh = again.json as typeof s.connect;
    assert.notEqual(fresh.token, s.connect.token);
    assert.equal((await xpraClient('info', target(api, fresh))).code, 0);

    // A token used after its TTL fails.
    const late = (await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: alice })).json as typeof s.connect;
    await sleep(Date.parse(late.expires_at) - Date.now() + 1_000);
    const expired = await xpraClient('info', target(api, late));
    // The edge admitted this address only until the token expired: TLS access_denied (xpra's EXIT_SSL_FAILURE).
    assert.equal(expired.code, 16, `after its TTL the edge refuses the connection: ${expired.stderr.slice(-400)}`);
    // Admitted again by a fresh /connect, the expired token still fails at xpra's own login.
    assert.equal((await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: alice })).status, 200);
    assert.equal((await xpraClient('info', target(api, late))).code, 7, 'a token after its TTL must fail at the login too');
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: alice });
  });

  it("refuses another user's token for this session", async () => {
    const mine = await launch(api, alice);
    const theirs = await launch(api, bob);
    // A fresh token for bob now: his launch's token has aged by alice's launch and his own.
    const bobs = await api.request('POST', `/v1/sessions/${theirs.session_id}/connect`, { token: bob });
    assert.equal(bobs.status, 200);
    const bobConnect = bobs.json as typeof theirs.connect;
    const r = await xpraClient('info', target(api, mine.connect, bobConnect.token));
    assert.equal(r.code, 7, "bob's token must not open alice's session");
    // Bob's token was not spent by that attempt on the wrong session: it still opens his own.
    assert.equal((await xpraClient('info', target(api, bobConnect))).code, 0);
    for (const [tok, s] of [[alice, mine], [bob, theirs]] as const) {
      assert.equal((await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: tok })).status, 200);
    }
  });

  it('persists and audits connected ⇄ idle from a real client at the gateway', async () => {
    const s = await launch(api, alice);
    // Only a client that logged in to xpra makes the session connected (a bare TLS tunnel does
    // not: session-knocking.test.ts): a real xpra attach.
    const display = await startXvfb();
    const client = xpraAttach(target(api, s.connect), display.name);
    try {
      const connected = await waitForSession(api, alice, s.session_id, (v) => {
        assert.ok(!client.exited(), `the client exited: ${client.output()}`);
        return v.state === 'connected';
      }, 60_000);
      assert.equal(connected.idle_since, null);
    } finally {
      client.close();
      display.close();
    }
    const idle = await waitForSession(api, alice, s.session_id, (v) => v.state === 'idle', 30_000);
    assert.ok(idle.idle_since);
    const audit = await api.request('GET', `/v1/audit?user=${s.session_id}&limit=50`, { token: await api.adminToken() });
    const actions = (audit.json as { items: { action: string }[] }).items.map((i) => i.action);
    for (const a of ['session_created', 'session_ready', 'session_connect_token', 'session_connected', 'session_idle']) assert.ok(actions.includes(a), `${a} in ${actions.join(',')}`);
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: alice });
  });

  it('stops explicitly: container and route gone, stopped and audited; twice is idempotent; not found for others', async () => {
    const s = await launch(api, alice);
    const [c] = (await containersOf(sessions.instanceId)).filter((x) => x.Labels[LABELS.session] === s.session_id);
    assert.ok(c, 'the session has a labelled container');
    assert.ok(api.gw.app.routes.lookup(s.connect.sni));

    const foreign = await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: bob });
    assert.equal(expectError(foreign, 404, 'NOT_FOUND'), undefined);
    assert.equal(expectError(await api.request('GET', `/v1/sessions/${s.session_id}`, { token: bob }), 404, 'NOT_FOUND'), undefined);
    assert.equal(expectError(await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: bob }), 404, 'NOT_FOUND'), undefined);

    const stop = await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: alice });
    assert.equal(stop.status, 200);
    assert.equal((stop.json as SessionView).state, 'stopped');
    assert.equal(api.gw.app.routes.lookup(s.connect.sni), undefined, 'route withdrawn');
    await assert.rejects(docker.getContainer(c.Id).inspect(), /no such container/i);
    const twice = await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: alice });
    assert.equal(twice.status, 200);
    assert.equal((twice.json as SessionView).state, 'stopped');
    // A stopped session has no route: the gateway answers unrecognized_name and xpra fails.
    assert.notEqual((await xpraClient('version', target(api, s.connect))).code, 0);
    assert.equal(expectError(await api.request('POST', `/v1/sessions/${s.session_id}/connect`, { token: alice }), 409, 'SESSION_NOT_RUNNING'), undefined);

    const listed = await api.request('GET', '/v1/sessions?ended=1', { token: alice });
    const row = (listed.json as { items: SessionView[] }).items.find((i) => i.session_id === s.session_id);
    assert.equal(row?.state, 'stopped');
    assert.ok(row?.ended_at);
    const audit = await api.request('GET', `/v1/audit?user=${s.session_id}&action=session_stopped`, { token: await api.adminToken() });
    assert.equal((audit.json as { items: unknown[] }).items.length, 1);
  });

  it('enforces the concurrent-session quota', async () => {
    const live = (await api.request('GET', '/v1/sessions', { token: bob })).json as { items: SessionView[] };
    for (const s of live.items) await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: bob });
    const one = await launch(api, bob);
    const two = await api.request('POST', '/v1/sessions', { token: bob, body: { app: 'firefox' } });
    assert.equal(expectError(two, 409, 'QUOTA_EXCEEDED'), undefined);
    const mine = (await api.request('GET', '/v1/sessions', { token: bob })).json as { items: SessionView[] };
    assert.deepEqual(
      mine.items.map((i) => i.session_id),
      [one.session_id],
    );
    assert.equal(mine.items[0]?.user_id, bobId);
    await api.request('POST', `/v1/sessions/${one.session_id}/stop`, { token: bob });
    // Once stopped, the slot is free again.
    const three = await launch(api, bob);
    await api.request('POST', `/v1/sessions/${three.session_id}/stop`, { token: bob });
  });

  it('refuses bad input with a clear error and starts nothing', async () => {
    const before = (await containersOf(sessions.instanceId)).length;
    const cases: Array<[unknown, number, string, RegExp]> = [
      [{ app: 'chrome' }, 400, 'VALIDATION_FAILED', /body\.app: unknown app; available: firefox/],
      [{}, 400, 'VALIDATION_FAILED', /body\.app/],
      [{ app: 'firefox', url: 'javascript:alert(1)' }, 400, 'VALIDATION_FAILED', /body\.url: must be an http/],
      [{ app: 'firefox', url: 'file:///etc/passwd' }, 400, 'VALIDATION_FAILED', /body\.url/],
      [{ app: 'firefox', url: 'data:text/html,<h1>x</h1>' }, 400, 'VALIDATION_FAILED', /body\.url/],
      [{ app: 'firefox', url: 'ftp://example.org/' }, 400, 'VALIDATION_FAILED', /body\.url/],
      [{ app: 'firefox', url: `https://example.org/${'a'.repeat(3000)}` }, 400, 'VALIDATION_FAILED', /body\.url/],
      [{ app: 'firefox', url: 42 }, 400, 'VALIDATION_FAILED', /body\.url/],
      [{ app: 'firefox', quality: 'ultra-max' }, 400, 'VALIDATION_FAILED', /body\.quality/],
      [{ app: 'firefox', quality: 1e308 }, 400, 'VALIDATION_FAILED', /body\.quality/],
      [{ app: 'firefox', quality: -1 }, 400, 'VALIDATION_FAILED', /body\.quality/],
      [{ app: 'firefox', profile: 'shared' }, 400, 'VALIDATION_FAILED', /body\.profile/],
      [{ app: 'firefox', extra: true }, 400, 'VALIDATION_FAILED', /extra/],
    ];
    for (const [body, status, code, message] of cases) {
      const r = await api.request('POST', '/v1/sessions', { token: alice, body });
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)} → ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(errorCode(r), code);
      assert.match(r.text, message);
    }
    assert.equal((await api.request('POST', '/v1/sessions', { body: { app: 'firefox' } })).status, 401);
    assert.equal(expectError(await api.request('GET', '/v1/sessions/not-a-uuid', { token: alice }), 404, 'NOT_FOUND'), undefined);
    assert.equal(expectError(await api.request('POST', '/v1/sessions/00000000-0000-4000-8000-000000000000/stop', { token: alice }), 404, 'NOT_FOUND'), undefined);
    assert.equal(expectError(await api.request('GET', '/v1/sessions?all=maybe', { token: alice }), 400, 'VALIDATION_FAILED'), undefined);
    assert.equal((await containersOf(sessions.instanceId)).length, before, 'no container was started');
  });
});

describe('sessions API: changing a user ends their live sessions (real Docker, a real TLS connection through the gateway)', () => {
  const sessions = testSessions();
  let api: TestApi;
  before(async () => {
    api = await startApi({ db: 'postgres', kv: 'memory', config: { sessions } });
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });

  async function containerOf(sessionId: string): Promise<string> {
    const c = (await containersOf(sessions.instanceId)).find((x) => x.Labels[LABELS.session] === sessionId);
    assert.ok(c, `session ${sessionId} has a container`);
    return c.Id;
  }

  async function stopRow(admin: string, sessionId: string): Promise<{ actor: string; details: Record<string, unknown> } | undefined> {
    const r = await api.request('GET', `/v1/audit?user=${sessionId}&action=session_stopped`, { token: admin });
    return (r.json as { items: Array<{ actor: string; details: Record<string, unknown> }> }).items[0];
  }

  it('disabling the user cuts the attached client and removes the container before the API answers, audited with why', async () => {
    const admin = await api.adminToken();
    const id = await api.createUser('dora', 'dora-password-12', { quota: { max_sessions: 2 } });
    const token = (await api.login('dora', 'dora-password-12')).access_token;
    const s = await launch(api, token);
    const cid = await containerOf(s.session_id);
    // A real TLS connection through the gateway to the session's xpra (its certificate, the pinned CA).
    const sock = tls.connect({ host: '127.0.0.1', port: api.port, servername: s.connect.sni, ca: s.connect.ca_cert });
    sock.on('error', () => {});
    let isClosed = false;
    const closed = new Promise<void>((r) =>
      sock.once('close', () => {
        isClosed = true;
        r();
      }),
    );
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('close', () => reject(new Error('the TLS connection to the session closed before its handshake')));
    });
    assert.equal(sock.authorized, true, 'xpra answered with the session certificate');
    // The edge counted the tunnel (a bare TLS tunnel never makes the session "connected": only
    // an xpra login does, session-knocking.test.ts; the cut is what this test is about).
    assert.ok(await waitFor(() => api.gw.app.gateway.tunnelCount(s.connect.sni) === 1, 30_000), 'the edge counts the tunnel');
    assert.equal(isClosed, false, 'still attached before the change');

    const r = await api.request('PATCH', `/v1/users/${id}`, { token: admin, body: { disabled: true } });
    assert.equal(r.status, 200, r.text);
    // The API answered after the sessions ended: the container is gone already.
    await assert.rejects(docker.getContainer(cid).inspect(), /no such container/i);
    await closed; // the withdrawn route cut the attached client
    assert.equal(((await api.request('GET', `/v1/sessions/${s.session_id}`, { token: admin })).json as SessionView).state, 'stopped');
    const stop = await stopRow(admin, s.session_id);
    assert.deepEqual([stop?.details.reason, stop?.details.cause], ['admin', 'user-disabled']);
    assert.notEqual(stop?.actor, 'system', 'the admin who disabled the user is the actor');
  });

  it('a password reset or a role change ends the user’s live sessions too; a quota change does not', async () => {
    const admin = await api.adminToken();
    const id = await api.createUser('emil', 'emil-password-12', { quota: { max_sessions: 3 } });
    const login = async () => (await api.login('emil', 'emil-password-12')).access_token;
    const cases = [
      { patch: { quota: { max_sessions: 4 } }, cause: null },
      { patch: { password: 'emil-password-12' }, cause: 'password-reset' },
      { patch: { role: 'admin' }, cause: 'role-changed' },
    ] as const;
    for (const c of cases) {
      const s = await launch(api, await login());
      const r = await api.request('PATCH', `/v1/users/${id}`, { token: admin, body: c.patch });
      assert.equal(r.status, 200, r.text);
      const view = (await api.request('GET', `/v1/sessions/${s.session_id}`, { token: admin })).json as SessionView;
      if (c.cause === null) {
        assert.equal(view.state, 'ready', `${JSON.stringify(c.patch)} keeps the session`);
        await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: admin });
        continue;
      }
      assert.equal(view.state, 'stopped', `${JSON.stringify(c.patch)} ends the session`);
      assert.equal((await containersOf(sessions.instanceId)).filter((x) => x.Labels[LABELS.session] === s.session_id).length, 0);
      assert.equal((await stopRow(admin, s.session_id))?.details.cause, c.cause);
    }
  });
});
