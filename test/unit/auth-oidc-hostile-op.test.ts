import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { HostDeviceFlow, HostRedirectFlow } from '../../core/plugin/auth-chain.js';
import type { PluginAuditEntry } from '../../core/plugin/contract.js';
import { startPluginHost, type PluginHost } from '../../core/plugin/host.js';
import { loadPlugins } from '../../core/plugin/loader.js';
import { capturingLogger, fakeServices } from '../fixtures/plugins/harness.js';
import { localhostTls, TestBrowser } from '../helpers/oidc-op.js';
import { scratchDirs } from '../helpers/tmp.js';

/**
 * A named fake: a "hostile OP" that serves what a real provider never does (ID tokens with
 * the wrong issuer or audience, expired, not yet valid, unsigned, badly signed, a replayed
 * nonce; device errors on demand), to prove openid-client's checks are on in the plugin.
 */
type Fault = 'none' | 'wrong-iss' | 'wrong-aud' | 'expired' | 'not-yet-valid' | 'alg-none' | 'bad-signature' | 'nonce-replay' | 'no-id-token';

interface HostileOp {
  issuer: string;
  fault: Fault;
  deviceError: string | undefined;
  close(): Promise<void>;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function jwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject | null): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${key ? sign('sha256', Buffer.from(input), key).toString('base64url') : ''}`;
}

async function startHostileOp(dir: string): Promise<HostileOp & { ca: string; caFile: string }> {
  const tls = await localhostTls(dir);
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const codes = new Map<string, string>();
  let lastNonce = 'never-issued';
  const server: Server = createServer({ cert: tls.cert, key: tls.key });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `https://localhost:${(server.address() as AddressInfo).port}`;
  const state: HostileOp & { ca: string; caFile: string } = { issuer, fault: 'none', deviceError: undefined, ca: tls.ca, caFile: tls.caFile, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
  const idToken = (nonce: string | undefined): string => {
    const now = Math.floor(Date.now() / 1000);
    const f = state.fault;
    const claims: Record<string, unknown> = {
      iss: f === 'wrong-iss' ? 'https://evil.example' : issuer,
      aud: f === 'wrong-aud' ? 'someone-else' : 'hackstream',
      sub: 'mallory-sub',
      preferred_username: 'mallory',
      iat: f === 'not-yet-valid' ? now + 3600 : f === 'expired' ? now - 7200 : now,
      exp: f === 'expired' ? now - 3600 : now + 300,
      ...(f === 'not-yet-valid' ? { nbf: now + 3600 } : {}),
      ...(nonce !== undefined ? { nonce: f === 'nonce-replay' ? lastNonce : nonce } : {}),
    };
    if (nonce !== undefined && f !== 'nonce-replay') lastNonce = nonce;
    if (f === 'alg-none') return jwt({ alg: 'none', typ: 'JWT' }, claims, null);
    return jwt({ alg: 'RS256', kid: 'k1', typ: 'JWT' }, claims, f === 'bad-signature' ? otherKey : key.privateKey);
  };
  server.on('request', (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      if (url.pathname === '/.well-known/openid-configuration') {
        return json(200, {
          issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`,
          device_authorization_endpoint: `${issuer}/device`, response_types_supported: ['code'], subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256', 'none'], code_challenge_methods_supported: ['S256'],
        });
      }
      if (url.pathname === '/jwks') return json(200, { keys: [{ ...key.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig', alg: 'RS256' }] });
      if (url.pathname === '/authorize') {
        const code = randomBytes(16).toString('hex');
        codes.set(code, url.searchParams.get('nonce') ?? '');
        const back = new URL(url.searchParams.get('redirect_uri') ?? '');
        back.searchParams.set('code', code);
        back.searchParams.set('state', url.searchParams.get('state') ?? '');
        return res.writeHead(302, { location: back.href }).end();
      }
      if (url.pathname === '/device') return json(200, { device_code: 'dc-1', user_code: 'ABCD-EFGH', verification_uri: `${issuer}/verify`, expires_in: 60, interval: 1 });
      if (url.pathname === '/token' && form.get('grant_type') === 'authorization_code') {
        const nonce = codes.get(form.get('code') ?? '');
        if (nonce === undefined) return json(400, { error: 'invalid_grant' });
        return json(200, { access_token: 'at', token_type: 'Bearer', expires_in: 60, ...(state.fault === 'no-id-token' ? {} : { id_token: idToken(nonce) }) });
      }
      if (url.pathname === '/token') {
        if (state.deviceError) return json(400, { error: state.deviceError });
        return json(200, { access_token: 'at', token_type: 'Bearer', expires_in: 60, id_token: idToken(undefined) });
      }
      json(404, { error: 'not_found' });
    });
  });
  return state;
}

const scratch = scratchDirs('hs-oidc-hostile-');
const REDIRECT = 'https://hackstream.test/v1/auth/flows/evil/callback';
let hostile: Awaited<ReturnType<typeof startHostileOp>>;
let host: PluginHost;
let redirect: HostRedirectFlow;
let device: HostDeviceFlow;
const audited: PluginAuditEntry[] = [];
const { logger } = capturingLogger();

before(async () => {
  hostile = await startHostileOp(scratch());
  const loaded = await loadPlugins({ 'auth-oidc': { issuers: { evil: { issuer: hostile.issuer, clientId: 'hackstream', clientSecret: 's3cret', caFile: hostile.caFile } } } });
  host = await startPluginHost(loaded, { logger, services: fakeServices({}, audited) });
  redirect = host.auth.redirectFlow('evil')!;
  device = host.auth.deviceFlow('evil')!;
});

after(async () => {
  await host?.close();
  await hostile?.close();
});

async function callbackWith(fault: Fault) {
  hostile.fault = fault;
  const state = randomBytes(16).toString('base64url');
  const { url, data } = await redirect.begin({ state, redirectUri: REDIRECT, ip: '192.0.2.9' });
  const page = await new TestBrowser([hostile.ca]).go(new URL(url), { stopAt: (u) => u.hostname === 'hackstream.test' });
  return redirect.callback({ params: Object.fromEntries(page.url.searchParams), state, redirectUri: REDIRECT, data, ip: '192.0.2.9' });
}

describe('auth-oidc against a hostile OP (a named fake)', () => {
  it('the fake without a fault is accepted (so each refusal below is the fault\'s)', async () => {
    const a = await callbackWith('none');
    assert.deepEqual(a, { result: 'ok', identity: { username: 'mallory', role: 'user', source: 'oidc:evil', subject: 'mallory-sub' }, provider: 'auth-oidc' });
  });

  const cases: { fault: Fault; why: RegExp }[] = [
    { fault: 'wrong-iss', why: /iss/ },
    { fault: 'wrong-aud', why: /aud/ },
    { fault: 'expired', why: /exp|timestamp/ },
    { fault: 'not-yet-valid', why: /nbf|iat|timestamp|future/ },
    { fault: 'alg-none', why: /alg|signature|none/i },
    { fault: 'bad-signature', why: /signature/ },
    { fault: 'nonce-replay', why: /nonce/ },
    { fault: 'no-id-token', why: /id_token|ID token/ },
  ];
  for (const { fault, why } of cases) {
    it(`an ID token with ${fault} is refused with a clear reason and an audit row`, async () => {
      const before = audited.length;
      const a = await callbackWith(fault);
      assert.equal(a.result, 'deny', fault);
      assert.match(a.result === 'deny' ? a.reason : '', why);
      assert.equal(audited.length, before + 1);
      assert.equal(audited.at(-1)?.action, 'auth_oidc.refused');
    });
  }

  it('device: the provider\'s pending, slow_down, expired_token and access_denied are mapped; a bad ID token is refused', async () => {
    const s = await device.start({ ip: '192.0.2.9' });
    assert.equal(s.intervalS, 1);
    const expected = { authorization_pending: 'pending', slow_down: 'slow-down', expired_token: 'expired', access_denied: 'deny' } as const;
    for (const [error, result] of Object.entries(expected)) {
      hostile.deviceError = error;
      assert.equal((await device.poll({ data: s.data, ip: '192.0.2.9' })).result, result, error);
    }
    hostile.deviceError = undefined;
    hostile.fault = 'bad-signature';
    const bad = await device.poll({ data: s.data, ip: '192.0.2.9' });
    assert.equal(bad.result, 'deny');
    assert.match(bad.result === 'deny' ? bad.reason : '', /signature/);
  });
});
