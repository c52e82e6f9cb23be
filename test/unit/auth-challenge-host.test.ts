import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAuthChain, FlowUnavailableError } from '../../core/plugin/auth-chain.js';
import type { AuthProvider, DeviceFlow, RedirectFlow, SecondFactor } from '../../core/plugin/contract.js';
import { emptyRegistrations } from '../../core/plugin/registrations.js';
import { capturingLogger } from '../fixtures/plugins/harness.js';

/*
 * The host's side of flows and second factors, fail closed: a throw, a hang (past the call
 * timeout) or a malformed answer is a deny, "required", or a refusal, logged with the plugin.
 */

const HANG = new Promise<never>(() => {});
const SUBJECT = { userId: 'u1', username: 'alice', provider: 'p', ip: '192.0.2.7' };
const TIMEOUT_MS = 30;
type Fault = 'throw' | 'hang' | 'garbage';

function misbehave(fault: Fault, garbage: unknown): Promise<never> {
  if (fault === 'throw') return Promise.reject(new Error('provider unreachable'));
  if (fault === 'hang') return HANG;
  return Promise.resolve(garbage as never);
}

function host(reg = emptyRegistrations()) {
  const log = capturingLogger();
  return { auth: createAuthChain(reg, log.logger, TIMEOUT_MS), lines: log.lines };
}

const FAULTS: Fault[] = ['throw', 'hang', 'garbage'];

describe('second factors on the host, fail closed', () => {
  for (const fault of FAULTS) {
    it(`${fault}: required() counts as yes, verify() as refused, each logged with the plugin`, async () => {
      const reg = emptyRegistrations();
      const factor: SecondFactor = { id: 'otp', required: () => misbehave(fault, 'yes'), verify: () => misbehave(fault, { ok: 'true' }) };
      reg.secondFactors.push({ plugin: 'mfa-x', value: factor });
      const h = host(reg);
      const [f] = h.auth.secondFactors;
      assert.equal(await f?.required(SUBJECT), true);
      assert.deepEqual(await f?.verify(SUBJECT, '123456'), { ok: false, reason: 'factor-error' });
      assert.deepEqual(
        h.lines.filter((l) => l.plugin === 'mfa-x').map((l) => l.call),
        ['otp.required', 'otp.verify'],
      );
      assert.ok(!JSON.stringify(h.lines).includes('123456'), 'the response is never logged');
    });
  }

  it('passes well-formed answers through', async () => {
    const reg = emptyRegistrations();
    reg.secondFactors.push({ plugin: 'mfa-x', value: { id: 'otp', required: async () => false, verify: async (_s, r) => (r === '1' ? { ok: true } : { ok: false, reason: 'wrong' }) } });
    const [f] = host(reg).auth.secondFactors;
    assert.equal(await f?.required(SUBJECT), false);
    assert.deepEqual(await f?.verify(SUBJECT, '1'), { ok: true });
    assert.deepEqual(await f?.verify(SUBJECT, '2'), { ok: false, reason: 'wrong' });
  });
});

describe('flows on the host, fail closed', () => {
  for (const fault of FAULTS) {
    it(`${fault}: begin and start are unavailable, callback and poll deny`, async () => {
      const reg = emptyRegistrations();
      const redirect: RedirectFlow = { id: 'sso', label: 'SSO', begin: () => misbehave(fault, { url: 'javascript:alert(1)', data: {} }), callback: () => misbehave(fault, { result: 'ok' }) };
      const device: DeviceFlow = { id: 'sso', label: 'SSO', start: () => misbehave(fault, { userCode: '' }), poll: () => misbehave(fault, { result: 'approved' }) };
      reg.redirectFlows.push({ plugin: 'sso-x', value: redirect });
      reg.deviceFlows.push({ plugin: 'sso-x', value: device });
      const h = host(reg);
      await assert.rejects(h.auth.redirectFlow('sso')!.begin({ state: 's', redirectUri: 'https://h/cb', ip: '::1' }), FlowUnavailableError);
      await assert.rejects(h.auth.deviceFlow('sso')!.start({ ip: '::1' }), FlowUnavailableError);
      const denied = { result: 'deny', reason: 'provider-error', provider: 'sso-x' };
      assert.deepEqual(await h.auth.redirectFlow('sso')!.callback({ params: {}, state: 's', redirectUri: 'https://h/cb', data: null, ip: '::1' }), denied);
      assert.deepEqual(await h.auth.deviceFlow('sso')!.poll({ data: null, ip: '::1' }), denied);
      assert.equal(h.lines.filter((l) => l.plugin === 'sso-x').length, 4);
    });
  }

  const identity = { username: 'alice', role: 'user', source: 'oidc:kc', subject: 'sub-1' };
  for (const [desc, answer, expected] of [
    ['an identity', { result: 'ok', identity }, { result: 'ok', identity, provider: 'sso-x' }],
    ['an identity with a bad username', { result: 'ok', identity: { ...identity, username: '../alice' } }, { result: 'deny', reason: 'provider-error', provider: 'sso-x' }],
    ['an identity with the role "root"', { result: 'ok', identity: { ...identity, role: 'root' } }, { result: 'deny', reason: 'provider-error', provider: 'sso-x' }],
    ['an identity with an extra field', { result: 'ok', identity: { ...identity, admin: true } }, { result: 'deny', reason: 'provider-error', provider: 'sso-x' }],
    ['both a user id and an identity', { result: 'ok', userId: 'u1', identity }, { result: 'deny', reason: 'provider-error', provider: 'sso-x' }],
    ['a deny without a reason', { result: 'deny' }, { result: 'deny', reason: 'denied', provider: 'sso-x' }],
    ['pending', { result: 'pending' }, { result: 'pending', provider: 'sso-x' }],
  ] as const) {
    it(`device poll answering ${desc}`, async () => {
      const reg = emptyRegistrations();
      reg.deviceFlows.push({ plugin: 'sso-x', value: { id: 'sso', label: 'SSO', start: () => HANG, poll: async () => answer as never } });
      assert.deepEqual(await host(reg).auth.deviceFlow('sso')!.poll({ data: null, ip: '::1' }), expected);
    });
  }

  it('a password provider may answer an identity; a malformed one denies', async () => {
    const reg = emptyRegistrations();
    const ok: AuthProvider = { authenticate: async () => ({ result: 'ok', identity: { username: 'bob', role: 'admin', source: 'ldap', subject: 'uid=bob' } }) };
    reg.authProviders.push({ plugin: 'ldap-x', value: ok });
    assert.deepEqual(await host(reg).auth.authenticate({ username: 'bob', password: 'pw', ip: '::1' }), {
      result: 'ok',
      identity: { username: 'bob', role: 'admin', source: 'ldap', subject: 'uid=bob' },
      provider: 'ldap-x',
    });
    const bad = emptyRegistrations();
    bad.authProviders.push({ plugin: 'ldap-x', value: { authenticate: async () => ({ result: 'ok', identity: { username: 'bob', role: 'admin', source: 'LDAP', subject: 'x' } }) } });
    assert.deepEqual(await host(bad).auth.authenticate({ username: 'bob', password: 'pw', ip: '::1' }), { result: 'deny', reason: 'provider-error', provider: 'ldap-x' });
  });

  it('lists flow ids once, with the kinds registered under each', () => {
    const reg = emptyRegistrations();
    const r: RedirectFlow = { id: 'b', label: 'B redirect', begin: () => HANG, callback: () => HANG };
    const d: DeviceFlow = { id: 'b', label: 'B device', start: () => HANG, poll: () => HANG };
    const a: DeviceFlow = { id: 'a', label: 'A', start: () => HANG, poll: () => HANG };
    reg.redirectFlows.push({ plugin: 'p', value: r });
    reg.deviceFlows.push({ plugin: 'p', value: d }, { plugin: 'q', value: a });
    assert.deepEqual(host(reg).auth.flows(), [
      { id: 'a', label: 'A', redirect: false, device: true },
      { id: 'b', label: 'B redirect', redirect: true, device: true },
    ]);
  });
});
