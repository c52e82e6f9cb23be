import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FlowUnavailableError, type HostDeviceFlow, type HostRedirectFlow } from '../../core/plugin/auth-chain.js';
import type { FlowData, PluginAuditEntry } from '../../core/plugin/contract.js';
import { startPluginHost, type PluginHost } from '../../core/plugin/host.js';
import { loadPlugins } from '../../core/plugin/loader.js';
import { capturingLogger, fakeServices } from '../fixtures/plugins/harness.js';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { startOp, TestBrowser, type TestOp } from '../helpers/oidc-op.js';
import { scratchDirs } from '../helpers/tmp.js';

// The plugin through the real loader and plugin host, against a real OpenID provider over HTTPS.
const scratch = scratchDirs('hs-oidc-');
const REDIRECT = `https://${PUBLIC_HOST}/v1/auth/flows/op/callback`;
const ACCOUNTS = {
  alice: { claims: { preferred_username: 'Alice', groups: ['staff', 'hs-admins'] } },
  bob: { claims: { preferred_username: 'bob', groups: ['staff'] } },
  shorty: { claims: { preferred_username: 'x' } },
  nameless: { claims: {} },
  carol: { claims: { preferred_username: 'carol', groups: ['hs-admins'] } },
  dave: { claims: { preferred_username: 'dave' } },
};
const IP = '192.0.2.7';

let op: TestOp;
let host: PluginHost;
let redirect: HostRedirectFlow;
let device: HostDeviceFlow;
const audited: PluginAuditEntry[] = [];
const { logger, lines } = capturingLogger();
const atCallback = (u: URL) => u.hostname === 'hackstream.test';

before(async () => {
  op = await startOp({ dir: scratch(), redirectUris: [REDIRECT], accounts: ACCOUNTS, deviceIntervalS: 1 });
  const closedPort = await freePort();
  const loaded = await loadPlugins({
    'auth-oidc': {
      issuers: {
        op: { issuer: op.issuer, label: 'Test OP', clientId: op.client.clientId, clientSecret: op.client.clientSecret, caFile: op.caFile, scopes: ['openid', 'profile', 'groups'], roleClaim: 'groups', roleMap: { 'hs-admins': 'admin' } },
        down: { issuer: `https://localhost:${closedPort}`, clientId: 'x', clientSecret: 'y', caFile: op.caFile, discoveryTimeoutMs: 500 },
      },
    },
  });
  host = await startPluginHost(loaded, { logger, services: fakeServices({}, audited) });
  redirect = host.auth.redirectFlow('op')!;
  device = host.auth.deviceFlow('op')!;
});

after(async () => {
  await host?.close();
  await op?.close();
});

/** begin, then a browser through the OP's login and consent back to the callback URL. */
async function signIn(account: string, o: { abort?: boolean } = {}): Promise<{ params: Record<string, string>; state: string; data: FlowData }> {
  const state = `state-${Math.random().toString(36).slice(2)}`;
  const { url, data } = await redirect.begin({ state, redirectUri: REDIRECT, ip: IP });
  const browser = new TestBrowser([op.ca]);
  const page = await op.interact(browser, await browser.go(new URL(url), { stopAt: atCallback }), account, { stopAt: atCallback, ...o });
  assert.equal(page.url.origin + page.url.pathname, REDIRECT, `ended at ${page.url.href}`);
  return { params: Object.fromEntries(page.url.searchParams), state, data };
}

const lastAudit = () => audited.at(-1);

describe('auth-oidc with a real OpenID provider', () => {
  it('lists both flows of each issuer under its key, with its label', () => {
    assert.deepEqual(host.auth.flows(), [
      { id: 'down', label: 'down', redirect: true, device: true },
      { id: 'op', label: 'Test OP', redirect: true, device: true },
    ]);
  });

  it('redirect: code + PKCE S256 + nonce; the verifier stays server-side; the identity is mapped', async () => {
    const { url, data } = await redirect.begin({ state: 'st-1', redirectUri: REDIRECT, ip: IP });
    const q = new URL(url).searchParams;
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.equal(q.get('state'), 'st-1');
    assert.equal(q.get('redirect_uri'), REDIRECT);
    const kept = data as { verifier: string; nonce: string };
    assert.equal(q.get('nonce'), kept.nonce);
    assert.ok(kept.verifier.length >= 43 && !url.includes(kept.verifier), 'the verifier is not in the URL');

    const flow = await signIn('alice');
    const answer = await redirect.callback({ ...flow, redirectUri: REDIRECT, ip: IP });
    assert.deepEqual(answer, { result: 'ok', identity: { username: 'alice', role: 'admin', source: 'oidc:op', subject: 'alice' }, provider: 'auth-oidc' });
    const bob = await signIn('bob');
    const b = await redirect.callback({ ...bob, redirectUri: REDIRECT, ip: IP });
    assert.equal(b.result === 'ok' && 'identity' in b && b.identity.role, 'user', 'no mapped group: user');
  });

  it('a code used twice is refused the second time (audited)', async () => {
    const flow = await signIn('bob');
    assert.equal((await redirect.callback({ ...flow, redirectUri: REDIRECT, ip: IP })).result, 'ok');
    const again = await redirect.callback({ ...flow, redirectUri: REDIRECT, ip: IP });
    assert.equal(again.result, 'deny');
    assert.match(again.result === 'deny' ? again.reason : '', /invalid_grant|error/i);
    assert.deepEqual({ ...lastAudit(), details: undefined }, { action: 'auth_oidc.refused', actor: null, target: 'oidc:op', ip: IP, result: 'failure', details: undefined });
  });

  it('another flow\'s kept data (verifier and nonce) or state is refused', async () => {
    const a = await signIn('bob');
    const other = await redirect.begin({ state: 'st-other', redirectUri: REDIRECT, ip: IP });
    const swapped = await redirect.callback({ ...a, data: other.data, redirectUri: REDIRECT, ip: IP });
    assert.equal(swapped.result, 'deny', 'the verifier does not match the code challenge');
    const b = await signIn('bob');
    const wrongState = await redirect.callback({ ...b, state: 'st-other', redirectUri: REDIRECT, ip: IP });
    assert.equal(wrongState.result, 'deny');
    assert.match(wrongState.result === 'deny' ? wrongState.reason : '', /state/i);
  });

  it('the user cancelling at the provider is a deny', async () => {
    const flow = await signIn('bob', { abort: true });
    assert.equal(flow.params.error, 'access_denied');
    const answer = await redirect.callback({ ...flow, redirectUri: REDIRECT, ip: IP });
    assert.equal(answer.result, 'deny');
    assert.match(answer.result === 'deny' ? answer.reason : '', /access_denied/);
  });

  it('a missing or invalid username claim is a deny with the reason', async () => {
    for (const [account, why] of [['nameless', /no preferred_username claim/], ['shorty', /not a valid username/]] as const) {
      const answer = await redirect.callback({ ...(await signIn(account)), redirectUri: REDIRECT, ip: IP });
      assert.equal(answer.result, 'deny', account);
      assert.match(answer.result === 'deny' ? answer.reason : '', why);
      assert.equal(lastAudit()?.details?.reason, answer.result === 'deny' ? answer.reason : '');
    }
  });

  it('device: pending until approved at the provider, then the identity', async () => {
    const s = await device.start({ ip: IP });
    assert.match(s.userCode, /^[A-Z]{4}-[A-Z]{4}$/);
    assert.equal(s.intervalS, 1);
    assert.ok(s.verificationUriComplete?.startsWith(`${op.issuer}/device`));
    assert.equal((await device.poll({ data: s.data, ip: IP })).result, 'pending');
    await op.approveDevice(new TestBrowser([op.ca]), s.verificationUriComplete!, 'alice');
    const answer = await device.poll({ data: s.data, ip: IP });
    assert.deepEqual(answer, { result: 'ok', identity: { username: 'alice', role: 'admin', source: 'oidc:op', subject: 'alice' }, provider: 'auth-oidc' });
    const reused = await device.poll({ data: s.data, ip: IP });
    assert.equal(reused.result, 'deny', 'a device code is good for one login');
  });

  it('device: denied at the provider is a deny', async () => {
    const s = await device.start({ ip: IP });
    await op.approveDevice(new TestBrowser([op.ca]), s.verificationUriComplete!, 'bob', { deny: true });
    const answer = await device.poll({ data: s.data, ip: IP });
    assert.equal(answer.result, 'deny');
    assert.match(answer.result === 'deny' ? answer.reason : '', /access_denied/);
  });

  it('an unreachable issuer: start-up went on, logged; its flows fail closed', async () => {
    assert.ok(lines.some((l) => l.msg === 'oidc issuer unreachable: its sign-in fails closed until discovery succeeds' && l.issuerKey === 'down'));
    await assert.rejects(host.auth.redirectFlow('down')!.begin({ state: 's', redirectUri: REDIRECT, ip: IP }), FlowUnavailableError);
    await assert.rejects(host.auth.deviceFlow('down')!.start({ ip: IP }), FlowUnavailableError);
    const poll = await host.auth.deviceFlow('down')!.poll({ data: { deviceCode: 'x' }, ip: IP });
    assert.equal(poll.result, 'deny');
  });

  it('no secret, code, verifier or token in the logs or audit', async () => {
    const flow = await signIn('bob');
    await redirect.callback({ ...flow, redirectUri: REDIRECT, ip: IP });
    const text = JSON.stringify(lines) + JSON.stringify(audited);
    const kept = flow.data as { verifier: string; nonce: string };
    for (const secret of [op.client.clientSecret, flow.params.code!, kept.verifier, kept.nonce]) assert.ok(!text.includes(secret), 'a secret leaked');
  });
});

describe('auth-oidc through the real server (browser redirects: begin → OP → callback)', () => {
  let server: TestApi;
  let browser: TestBrowser;
  const begin = () => new URL(`https://${PUBLIC_HOST}/v1/auth/flows/op/begin`);
  const audit = async (action: string) =>
    ((await server.request('GET', `/v1/audit?action=${action}&limit=100`, { token: await server.adminToken() })).json as { items: { details: Record<string, unknown> }[] }).items;

  before(async () => {
    const oidcOptions = { issuers: { op: { issuer: op.issuer, clientId: op.client.clientId, clientSecret: op.client.clientSecret, caFile: op.caFile, scopes: ['openid', 'profile', 'groups'], roleClaim: 'groups', roleMap: { 'hs-admins': 'admin' } } } };
    server = await startApi({ captureLogs: true, config: { plugins: { 'auth-oidc': oidcOptions, 'auth-local': {}, 'quota-default': {} } } });
  });
  after(async () => {
    await server?.close();
  });

  /**
   * Through the OP's pages as `account`; the callback URL the OP sent the browser to (not yet
   * followed). The browser reaches HackStream by its public name, so the callback URL is the registered one.
   */
  async function toCallback(account: string): Promise<URL> {
    // A fresh browser each time: no OP session left signed in as someone else.
    browser = new TestBrowser([op.ca, server.gw.ca], { [PUBLIC_HOST]: { address: '127.0.0.1', port: server.port } });
    const page = await op.interact(browser, await browser.go(begin(), { stopAt: atCallback }), account, { stopAt: atCallback });
    assert.equal(page.url.pathname, '/v1/auth/flows/op/callback', page.url.href);
    return page.url;
  }

  it('lists the flow; a sign-in provisions the account with the mapped role; the state is single use', async () => {
    const flows = await server.request('GET', '/v1/auth/flows');
    assert.deepEqual(flows.json, { flows: [{ id: 'op', label: 'op', redirect: true, device: true }] });
    const callback = await toCallback('carol');
    const done = await browser.go(callback);
    assert.equal(done.status, 200, done.text);
    const pair = JSON.parse(done.text) as { access_token: string; token_type: string };
    const me = await server.request('GET', '/v1/me', { token: pair.access_token });
    assert.deepEqual([(me.json as { username: string }).username, (me.json as { role: string }).role], ['carol', 'admin']);
    const again = await browser.go(callback);
    assert.equal(again.status, 400);
    assert.match(again.text, /AUTH_FLOW_STATE_INVALID/);
    assert.ok((await audit('authn_login_fail')).some((r) => r.details.reason === 'state-invalid' && r.details.flow === 'op'));
  });

  it('a forged state is refused before the plugin is asked', async () => {
    const callback = await toCallback('carol');
    callback.searchParams.set('state', 'A'.repeat(43));
    const r = await browser.go(callback);
    assert.equal(r.status, 400);
    assert.match(r.text, /AUTH_FLOW_STATE_INVALID/);
  });

  it('an OIDC login never takes over a local account of the same name (401, audited)', async () => {
    await server.createUser('dave', 'Local-Dave-Password-1');
    const callback = await toCallback('dave');
    const r = await browser.go(callback);
    assert.equal(r.status, 401, r.text);
    assert.match(r.text, /AUTH_FLOW_DENIED/);
    assert.ok((await audit('authn_login_fail')).some((row) => row.details.flow === 'op' && row.details.provider === 'auth-oidc'));
    const local = await server.request('POST', '/v1/login', { body: { username: 'dave', password: 'Local-Dave-Password-1' } });
    assert.equal(local.status, 200, 'the local account still logs in with its password');
  });

  it('a refusal by the plugin (invalid username claim) is 401 with its reason in the audit', async () => {
    const callback = await toCallback('shorty');
    const r = await browser.go(callback);
    assert.equal(r.status, 401);
    assert.ok((await audit('auth_oidc.refused')).some((row) => String(row.details.reason).includes('not a valid username')));
    assert.ok(!server.logs.join('\n').includes(op.client.clientSecret));
  });

  it('a device poll too soon is SLOW_DOWN; an unknown device id is EXPIRED_TOKEN', async () => {
    const start = await server.request('POST', '/v1/auth/flows/op/device');
    const { device_id: deviceId } = start.json as { device_id: string };
    assert.equal(errorCode(await server.request('POST', '/v1/auth/flows/op/device/poll', { body: { device_id: deviceId } })), 'AUTHORIZATION_PENDING');
    assert.equal(errorCode(await server.request('POST', '/v1/auth/flows/op/device/poll', { body: { device_id: deviceId } })), 'SLOW_DOWN');
    assert.equal(errorCode(await server.request('POST', '/v1/auth/flows/op/device/poll', { body: { device_id: 'B'.repeat(43) } })), 'EXPIRED_TOKEN');
  });
});
