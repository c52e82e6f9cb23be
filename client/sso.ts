import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { errorOf, toCliError, type TokenPair } from './api.js';
import { CliError, EXIT } from './errors.js';
import type { HttpResult } from './http.js';

/** What the SSO login needs of the API client. */
export interface SsoApi {
  raw(method: string, path: string, body?: unknown, token?: string): Promise<HttpResult>;
  /** Finishes a login: a second factor if the server asks for one, then the tokens stored. */
  finishLogin(r: HttpResult, username: string | undefined): Promise<string>;
}

const flowsSchema = z.object({ flows: z.array(z.object({ id: z.string(), label: z.string(), redirect: z.boolean(), device: z.boolean() })) });
const grantSchema = z.object({
  device_id: z.string().min(1),
  user_code: z.string().min(1),
  verification_uri: z.string().url(),
  verification_uri_complete: z.string().url().optional(),
  expires_in: z.number().positive(),
  interval: z.number().positive(),
});

/** The extra seconds RFC 8628 asks a client to add to its interval after slow_down. */
const SLOW_DOWN_S = 5;

/** Which device flow: `--provider`, else the only one; with several, the list to choose from. */
async function pickFlow(api: SsoApi, provider: string | undefined): Promise<{ id: string; label: string }> {
  const r = await api.raw('GET', '/v1/auth/flows');
  if (r.status !== 200) throw toCliError(r);
  const parsed = flowsSchema.safeParse(r.json);
  if (!parsed.success) throw new CliError(EXIT.FAILURE, 'the server answered GET /v1/auth/flows with something unexpected');
  const device = parsed.data.flows.filter((f) => f.device);
  const list = device.map((f) => `  ${f.id}  (${f.label})`).join('\n');
  if (provider !== undefined) {
    const flow = device.find((f) => f.id === provider);
    if (!flow) throw new CliError(EXIT.USAGE, device.length ? `no SSO provider "${provider}" on this server; it offers:\n${list}` : 'this server offers no SSO sign-in for the CLI');
    return flow;
  }
  if (device.length === 0) throw new CliError(EXIT.USAGE, 'this server offers no SSO sign-in for the CLI (no device flow); log in with a password');
  if (device.length > 1) throw new CliError(EXIT.USAGE, `this server offers several SSO providers; choose one with --provider <id>:\n${list}`);
  return device[0]!;
}

/**
 * `hackstream login --sso`: the OAuth 2.0 device flow through the server. Shows the user code
 * and where to enter it, polls at the server's interval (longer after SLOW_DOWN) until the
 * sign-in is approved, refused or expired. Returns the username logged in.
 */
export async function ssoLogin(api: SsoApi, o: { provider?: string; log: (s: string) => void }): Promise<string> {
  const flow = await pickFlow(api, o.provider);
  const started = await api.raw('POST', `/v1/auth/flows/${encodeURIComponent(flow.id)}/device`);
  if (started.status !== 200) throw toCliError(started);
  const g = grantSchema.safeParse(started.json);
  if (!g.success) throw new CliError(EXIT.FAILURE, 'the server answered the device sign-in start with something unexpected');
  const grant = g.data;
  o.log(`Signing in with ${flow.label}.`);
  o.log(`Open ${grant.verification_uri} and enter the code: ${grant.user_code}`);
  if (grant.verification_uri_complete) o.log(`Or open: ${grant.verification_uri_complete}`);
  o.log(`Waiting for approval (the code expires in ${Math.round(grant.expires_in / 60) || 1} min)…`);
  let interval = grant.interval;
  const deadline = Date.now() + grant.expires_in * 1000;
  for (;;) {
    await sleep(interval * 1000);
    const r = await api.raw('POST', `/v1/auth/flows/${encodeURIComponent(flow.id)}/device/poll`, { device_id: grant.device_id });
    const code = r.status === 200 ? 'OK' : errorOf(r).code;
    if (code === 'AUTHORIZATION_PENDING') {
      if (Date.now() > deadline) throw expired();
      continue;
    }
    if (code === 'SLOW_DOWN') {
      interval += SLOW_DOWN_S;
      continue;
    }
    if (code === 'EXPIRED_TOKEN') throw expired();
    if (code === 'AUTH_FLOW_DENIED') throw new CliError(EXIT.AUTH, `the sign-in was refused (denied at ${flow.label}, or your account may not use HackStream)`);
    return api.finishLogin(r, undefined);
  }
}

function expired(): CliError {
  return new CliError(EXIT.AUTH, 'the sign-in code expired before it was approved: run hackstream login --sso again');
}

const challengeSchema = z.object({ challenge_id: z.string().min(1), factors: z.array(z.string()).min(1), expires_in: z.number().optional() });

/** Asks for a second factor's code: `factor` (e.g. totp), `retry` after a refused one. */
export type CodePrompt = (factor: string, retry: boolean) => Promise<string>;

/**
 * 401 AUTH_SECOND_FACTOR_REQUIRED → the code (prompted, or `--code`/stdin) posted to
 * /v1/login/second-factor; a wrong code is asked again while tries are left and the code
 * was prompted. Resolves with the answer that carries the token pair, or throws.
 */
export async function secondFactor(api: Pick<SsoApi, 'raw'>, required: HttpResult, ask: CodePrompt, canRetry: boolean): Promise<TokenPair> {
  const details = (required.json as { error?: { details?: unknown } } | undefined)?.error?.details;
  const c = challengeSchema.safeParse(details);
  if (!c.success) throw new CliError(EXIT.AUTH, 'the server asked for a second factor without a usable challenge');
  const factor = c.data.factors.includes('totp') ? 'totp' : c.data.factors[0]!;
  for (let retry = false; ; retry = true) {
    const response = (await ask(factor, retry)).trim();
    if (response === '') throw new CliError(EXIT.AUTH, `no ${factor} code given`);
    const r = await api.raw('POST', '/v1/login/second-factor', { challenge_id: c.data.challenge_id, factor, response });
    if (r.status === 200) return r.json as TokenPair;
    const { code } = errorOf(r);
    if (code === 'AUTH_SECOND_FACTOR_INVALID') {
      const left = (r.json as { error?: { details?: { attempts_left?: unknown } } }).error?.details?.attempts_left;
      const n = typeof left === 'number' ? left : 0;
      if (canRetry && n > 0) continue;
      throw new CliError(EXIT.AUTH, `wrong ${factor} code${n > 0 ? ` (${n} ${n === 1 ? 'try' : 'tries'} left: run hackstream login again)` : ''}`);
    }
    if (code === 'AUTH_CHALLENGE_INVALID') throw new CliError(EXIT.AUTH, 'the second-factor step expired or had too many wrong codes: run hackstream login again');
    throw toCliError(r);
  }
}
