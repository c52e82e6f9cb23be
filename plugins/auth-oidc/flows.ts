import * as oidc from 'openid-client';
import type { DeviceFlow, DevicePoll, FlowAnswer, FlowData, Logger, PluginServices, RedirectFlow } from '../../core/plugin/contract.js';
import { identityOf } from './identity.js';
import { describe, type Issuer } from './issuer.js';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

function field(data: FlowData, name: string): string | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const v = (data as Readonly<Record<string, FlowData>>)[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

interface Deps {
  readonly issuer: Issuer;
  readonly logger: Logger;
  readonly audit: PluginServices['audit'];
}

/** Logs and audits a refusal (the reason only: no code, token or claim value). */
async function refuse(d: Deps, flow: 'redirect' | 'device', ip: string, reason: string): Promise<FlowAnswer> {
  d.logger.warn({ issuerKey: d.issuer.key, flow, ip, reason }, 'oidc sign-in refused');
  await d.audit
    .record({ action: 'auth_oidc.refused', actor: null, target: `oidc:${d.issuer.key}`, ip, result: 'failure', details: { flow, reason } })
    .catch((err: unknown) => d.logger.error({ err: describe(err) }, 'oidc audit row not written'));
  return { result: 'deny', reason };
}

async function answer(d: Deps, flow: 'redirect' | 'device', ip: string, claims: Readonly<Record<string, unknown>> | undefined): Promise<FlowAnswer> {
  const a = identityOf(d.issuer.key, claims, d.issuer.options);
  return a.result === 'deny' ? refuse(d, flow, ip, a.reason) : a;
}

/** Authorization Code + PKCE S256, core's state, a fresh nonce; the ID token checked by openid-client. */
export function redirectFlow(d: Deps, label: string): RedirectFlow {
  const o = d.issuer.options;
  return {
    id: d.issuer.key,
    label,
    async begin({ state, redirectUri }) {
      const config = await d.issuer.get();
      const verifier = oidc.randomPKCECodeVerifier();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: o.scopes.join(' '),
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      return { url: url.href, data: { verifier, nonce } };
    },
    async callback({ params, state, redirectUri, data, ip }) {
      const verifier = field(data, 'verifier');
      const nonce = field(data, 'nonce');
      if (!verifier || !nonce) return refuse(d, 'redirect', ip, 'the kept flow data is missing');
      if (params.error !== undefined) return refuse(d, 'redirect', ip, `the provider answered ${String(params.error).slice(0, 64)}`);
      let config: oidc.Configuration;
      try {
        config = await d.issuer.get();
      } catch (err) {
        return refuse(d, 'redirect', ip, describe(err));
      }
      const current = new URL(redirectUri);
      for (const [k, v] of Object.entries(params)) current.searchParams.set(k, v);
      try {
        const tokens = await oidc.authorizationCodeGrant(config, current, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
        return await answer(d, 'redirect', ip, tokens.claims());
      } catch (err) {
        return refuse(d, 'redirect', ip, describe(err));
      }
    },
  };
}

/** The Device Authorization Grant; each poll is one token request. */
export function deviceFlow(d: Deps, label: string): DeviceFlow {
  const o = d.issuer.options;
  return {
    id: d.issuer.key,
    label,
    async start() {
      const config = await d.issuer.get();
      const r = await oidc.initiateDeviceAuthorization(config, { scope: o.scopes.join(' ') });
      return {
        userCode: r.user_code,
        verificationUri: r.verification_uri,
        ...(r.verification_uri_complete ? { verificationUriComplete: r.verification_uri_complete } : {}),
        expiresInS: r.expires_in,
        intervalS: r.interval ?? 5,
        data: { deviceCode: r.device_code },
      };
    },
    async poll({ data, ip }): Promise<DevicePoll> {
      const deviceCode = field(data, 'deviceCode');
      if (!deviceCode) return refuse(d, 'device', ip, 'the kept flow data is missing');
      let config: oidc.Configuration;
      try {
        config = await d.issuer.get();
      } catch (err) {
        return refuse(d, 'device', ip, describe(err));
      }
      try {
        const tokens = await oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: deviceCode });
        return await answer(d, 'device', ip, tokens.claims());
      } catch (err) {
        if (err instanceof oidc.ResponseBodyError) {
          if (err.error === 'authorization_pending') return { result: 'pending' };
          if (err.error === 'slow_down') return { result: 'slow-down' };
          if (err.error === 'expired_token') return { result: 'expired' };
          return refuse(d, 'device', ip, `the provider answered ${err.error}`);
        }
        return refuse(d, 'device', ip, describe(err));
      }
    },
  };
}
