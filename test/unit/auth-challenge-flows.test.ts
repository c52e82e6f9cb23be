import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Audit, AuditInput } from '../../core/auth/audit.js';
import { AuthFlows } from '../../core/auth/flows.js';
import type { LoginDeps } from '../../core/auth/login.js';
import { authSettings } from '../../core/auth/settings.js';
import { LoginThrottle, sourceId } from '../../core/auth/throttle.js';
import { sha256Hex } from '../../core/auth/tokens.js';
import { isAppError } from '../../core/errors.js';
import { createAuthChain } from '../../core/plugin/auth-chain.js';
import type { FlowData, RedirectFlow } from '../../core/plugin/contract.js';
import type { PluginHost } from '../../core/plugin/host.js';
import { emptyRegistrations } from '../../core/plugin/registrations.js';
import { silentLogger } from '../../lib/log.js';
import { openTestKv, type TestKv } from '../helpers/store.js';

/*
 * A redirect flow's state on the real (in-process) KV store with a short life: what the
 * plugin kept comes back to its callback, and an expired state is refused before the plugin
 * is asked. The refusals stop before any account work, so the deps that would do it are
 * absent: a named fake audit records the refusal rows.
 */

describe('redirect flow state', () => {
  let t: TestKv;
  let flows: AuthFlows;
  const rows: AuditInput[] = [];
  const callbacks: { state: string; data: FlowData; redirectUri: string }[] = [];
  const log = silentLogger();

  before(async () => {
    t = await openTestKv('memory');
    const reg = emptyRegistrations();
    const flow: RedirectFlow = {
      id: 'sso',
      label: 'SSO',
      begin: async ({ state, redirectUri }) => ({ url: `https://idp.example/authorize?state=${state}`, data: { nonce: 'n-1', redirectUri } }),
      callback: async ({ state, data, redirectUri }) => {
        callbacks.push({ state, data, redirectUri });
        return { result: 'deny', reason: 'test-stops-here' };
      },
    };
    reg.redirectFlows.push({ plugin: 'sso-x', value: flow });
    const fakeAudit: Audit = {
      record: async (entry) => void rows.push(entry),
      transaction: () => Promise.reject(new Error('no transactions in this test')),
    };
    const deps = {
      plugins: { auth: createAuthChain(reg, log, 1_000) } as Pick<PluginHost, 'auth'> as PluginHost,
      throttle: new LoginThrottle(t.kv, authSettings().throttle),
      audit: fakeAudit,
    } as Pick<LoginDeps, 'plugins' | 'throttle' | 'audit'> as LoginDeps;
    flows = new AuthFlows(deps, t.kv, { stateTtlMs: 200, slowDownMs: 5_000, startsPerMinute: 5 });
  });
  after(async () => {
    await t?.cleanup();
  });

  const stateOf = (url: string) => new URL(url).searchParams.get('state') ?? '';
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'resolved';
    } catch (err) {
      return isAppError(err) ? err.code : String(err);
    }
  };

  it('gives the callback what begin kept, with the redirect URI on the request host', async () => {
    const { url } = await flows.begin('sso', 'hs.example:8443', { ip: '192.0.2.7', log });
    const state = stateOf(url);
    assert.equal(await code(flows.callback('sso', { state, code: 'c' }, { ip: '192.0.2.7', log })), 'AUTH_FLOW_DENIED');
    const redirectUri = 'https://hs.example:8443/v1/auth/flows/sso/callback';
    assert.deepEqual(callbacks.at(-1), { state, data: { nonce: 'n-1', redirectUri }, redirectUri });
    assert.equal(rows.at(-1)?.details?.reason, 'test-stops-here');
  });

  it('refuses an expired state without asking the plugin', async () => {
    const { url } = await flows.begin('sso', 'hs.example', { ip: '192.0.2.7', log });
    const asked = callbacks.length;
    // The state is kept under its hash; wait until the store let it expire.
    const key = `login:flow:s:${sha256Hex(stateOf(url))}`;
    assert.notEqual(await t.kv.get(key), null);
    const deadline = Date.now() + 5_000;
    while ((await t.kv.get(key)) !== null) {
      assert.ok(Date.now() < deadline, 'the state expires');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await code(flows.callback('sso', { state: stateOf(url) }, { ip: '192.0.2.7', log })), 'AUTH_FLOW_STATE_INVALID');
    assert.equal(callbacks.length, asked);
    assert.equal(rows.at(-1)?.details?.reason, 'state-invalid');
  });

  it('refuses a Host header that is not a hostname', async () => {
    assert.equal(await code(flows.begin('sso', 'evil.example/x?', { ip: '192.0.2.7', log })), 'BAD_REQUEST');
  });

  it('limits the flows one source starts per minute (429 with Retry-After), other sources unaffected', async () => {
    const ip = '2001:db8:1:2::7';
    for (let i = 0; i < 5; i++) assert.equal(await code(flows.begin('sso', 'hs.example', { ip: `2001:db8:1:2::${i + 10}`, log })), 'resolved');
    // The same /64: the sixth start in the minute is refused.
    const refused = await flows.begin('sso', 'hs.example', { ip, log }).then(
      () => null,
      (err: unknown) => err,
    );
    assert.ok(isAppError(refused) && refused.code === 'RATE_LIMITED', String(refused));
    assert.ok(Number(refused.headers['Retry-After']) >= 1);
    assert.equal(await code(flows.begin('sso', 'hs.example', { ip: '198.51.100.9', log })), 'resolved');
  });

  it("counts starts under the throttle's own source id (one keying of a source for every limit)", async () => {
    const ip = '::ffff:203.0.113.5';
    assert.equal(await code(flows.begin('sso', 'hs.example', { ip, log })), 'resolved');
    // IPv4-mapped IPv6 is the IPv4 source: both spellings name one counter.
    assert.equal(await t.kv.get(`login:flow:start:${sourceId('203.0.113.5')}`), '1');
  });
});
