import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../errors.js';
import type { Logger } from '../../lib/log.js';
import { FlowUnavailableError, type AuthDecision, type FlowInfo } from '../plugin/auth-chain.js';
import type { FlowData } from '../plugin/contract.js';
import type { KeyValueStore } from '../store/kv.js';
import { finishLogin, loginFailed, refuseIf, resolveAccount, type LoginDeps } from './login.js';
import { sourceId } from './throttle.js';
import type { TokenPair } from './token-service.js';
import { sha256Hex } from './tokens.js';

/** What `POST /v1/auth/flows/<id>/device` answers (RFC 8628 names, camel-cased). */
export interface DeviceGrant {
  deviceId: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string;
  /** Seconds. */
  expiresIn: number;
  /** Seconds between polls. */
  interval: number;
}

export interface FlowLimits {
  /** How long a redirect flow's state lives. */
  readonly stateTtlMs: number;
  /** RFC 8628 §3.5: each slow_down adds this to the interval. */
  readonly slowDownMs: number;
  /**
   * Flows a source (IPv4 address, IPv6 /64) may start per minute (begin + device start): each
   * keeps up to 16 KB in the KV for its life and may call the provider.
   */
  readonly startsPerMinute: number;
}

export const DEFAULT_FLOW_LIMITS: FlowLimits = Object.freeze({ stateTtlMs: 10 * 60_000, slowDownMs: 5_000, startsPerMinute: 60 });

/** A random state or device id: 32 bytes, base64url. */
const RANDOM_ID = /^[A-Za-z0-9_-]{43}$/;
/** A Host header we put in a redirect URI: a hostname or address, optionally a port. */
const HOST = /^(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

const flowData: z.ZodType<FlowData> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(flowData), z.record(z.string(), flowData)]),
);
const stateRecord = z.strictObject({ flow: z.string(), data: flowData, redirectUri: z.string() });
const deviceRecord = z.strictObject({ flow: z.string(), data: flowData, expiresAt: z.number(), intervalMs: z.number() });
type DeviceRecord = z.output<typeof deviceRecord>;

interface Caller {
  readonly ip: string;
  readonly log: Logger;
}

/**
 * Redirect and device flows (contract v2), the core half: random state and device ids whose
 * hashes key the plugin's data in the KV store (single use, taken atomically), the device
 * poll interval enforced here, and the flow's verdict turned into an account and tokens the
 * same way as a password login (provisioning, second factor, TokenService.login).
 */
export class AuthFlows {
  constructor(
    private readonly deps: LoginDeps,
    private readonly kv: KeyValueStore,
    private readonly limits: FlowLimits = DEFAULT_FLOW_LIMITS,
  ) {}

  list(): readonly FlowInfo[] {
    return this.deps.plugins.auth.flows();
  }

  async begin(id: string, host: string, caller: Caller): Promise<{ url: string }> {
    const flow = this.deps.plugins.auth.redirectFlow(id) ?? (await this.notFound(id, 'begin', caller));
    if (!HOST.test(host)) throw new AppError('BAD_REQUEST', 'the Host header is not a hostname');
    await this.countStart(caller);
    const state = randomBytes(32).toString('base64url');
    const redirectUri = `https://${host}/v1/auth/flows/${id}/callback`;
    const { url, data } = await flow.begin({ state, redirectUri, ip: caller.ip }).catch(unavailable);
    await this.kv.set(stateKey(state), JSON.stringify({ flow: id, data, redirectUri }), { ttlMs: this.limits.stateTtlMs });
    return { url };
  }

  async callback(id: string, params: Readonly<Record<string, string>>, caller: Caller): Promise<TokenPair> {
    const flow = this.deps.plugins.auth.redirectFlow(id) ?? (await this.notFound(id, 'callback', caller));
    await refuseIf(this.deps, await this.deps.throttle.checkIp(caller.ip), { username: '', ip: caller.ip }, caller.log);
    const state = params.state ?? '';
    // GETDEL: of two callbacks with one state, one gets it; the other finds nothing.
    const raw = RANDOM_ID.test(state) ? await this.kv.getDel(stateKey(state)) : null;
    const kept = raw === null ? null : parseJson(stateRecord, raw);
    if (!kept || kept.flow !== id) {
      const reason = !kept ? 'state-invalid' : 'state-of-another-flow';
      await this.refused(id, flow.plugin, reason, caller);
      throw new AppError('AUTH_FLOW_STATE_INVALID', 'the sign-in state is missing, expired, already used or of another flow; start again');
    }
    const decision = await flow.callback({ params, state, redirectUri: kept.redirectUri, data: kept.data, ip: caller.ip });
    return this.complete(id, decision, caller);
  }

  async deviceStart(id: string, caller: Caller): Promise<DeviceGrant> {
    const flow = this.deps.plugins.auth.deviceFlow(id) ?? (await this.notFound(id, 'device', caller));
    await this.countStart(caller);
    const start = await flow.start({ ip: caller.ip }).catch(unavailable);
    const deviceId = randomBytes(32).toString('base64url');
    const ttlMs = start.expiresInS * 1000;
    const record: DeviceRecord = { flow: id, data: start.data, expiresAt: Date.now() + ttlMs, intervalMs: start.intervalS * 1000 };
    await this.kv.set(deviceKey(deviceId), JSON.stringify(record), { ttlMs });
    return {
      deviceId,
      userCode: start.userCode,
      verificationUri: start.verificationUri,
      ...(start.verificationUriComplete !== undefined ? { verificationUriComplete: start.verificationUriComplete } : {}),
      expiresIn: start.expiresInS,
      interval: start.intervalS,
    };
  }

  /** One more flow started by the caller's source this minute; past the limit 429 (not audited: nothing was tried). */
  private async countStart(caller: Caller): Promise<void> {
    const c = await this.kv.incr(`login:flow:start:${sourceId(caller.ip)}`, 60_000);
    if (c.count > this.limits.startsPerMinute) {
      throw new AppError('RATE_LIMITED', 'too many sign-ins started from this address; try again later', { headers: { 'Retry-After': String(Math.max(1, Math.ceil(c.ttlMs / 1000))) } });
    }
  }

  async devicePoll(id: string, deviceId: string, caller: Caller): Promise<TokenPair> {
    const flow = this.deps.plugins.auth.deviceFlow(id) ?? (await this.notFound(id, 'poll', caller));
    await refuseIf(this.deps, await this.deps.throttle.checkIp(caller.ip), { username: '', ip: caller.ip }, caller.log);
    const key = RANDOM_ID.test(deviceId) ? deviceKey(deviceId) : null;
    const raw = key ? await this.kv.get(key) : null;
    const record = raw === null ? null : parseJson(deviceRecord, raw);
    const left = record ? record.expiresAt - Date.now() : 0;
    if (!key || !record || record.flow !== id || left <= 0) {
      await this.refused(id, flow.plugin, record ? 'device-of-another-flow' : 'device-id-invalid', caller);
      throw expiredToken();
    }
    // One poll per interval, enforced with an atomic marker that lives one interval.
    if (!(await this.kv.set(`${key}:p`, '1', { ttlMs: record.intervalMs, ifAbsent: true }))) {
      await this.slowDown(key, record, left);
      throw new AppError('SLOW_DOWN', `polled too soon; wait ${Math.ceil((record.intervalMs + this.limits.slowDownMs) / 1000)} s between polls`);
    }
    const answer = await flow.poll({ data: record.data, ip: caller.ip });
    if (answer.result === 'pending') throw new AppError('AUTHORIZATION_PENDING', 'waiting for the user to approve the sign-in');
    if (answer.result === 'slow-down') {
      await this.slowDown(key, record, left);
      throw new AppError('SLOW_DOWN', 'the provider asked for slower polling');
    }
    // A final answer: the device id is done, whatever comes next. Of concurrent polls one takes it.
    if ((await this.kv.getDel(key)) === null) {
      await this.refused(id, flow.plugin, 'device-id-used', caller);
      throw expiredToken();
    }
    if (answer.result === 'ok' || answer.result === 'deny') return this.complete(id, answer, caller);
    await this.refused(id, flow.plugin, 'provider-expired', caller);
    throw expiredToken();
  }

  /** A flow's final verdict: the account (provisioned if need be), then the second factor or tokens. */
  private async complete(id: string, decision: AuthDecision, caller: Caller): Promise<TokenPair> {
    const account = await resolveAccount(this.deps, decision, caller.ip);
    if (!account.ok || decision.result !== 'ok') {
      const reason = account.ok ? 'denied' : account.reason;
      await loginFailed(this.deps, { target: account.ok ? null : account.userId, ip: caller.ip, throttleAs: null, details: { reason, flow: id, provider: decision.provider } }, caller.log);
      throw new AppError('AUTH_FLOW_DENIED', 'the sign-in was refused');
    }
    return finishLogin(this.deps, account.user, { provider: decision.provider, flow: id, ip: caller.ip }, account.user.username, caller.log);
  }

  private async slowDown(key: string, record: DeviceRecord, leftMs: number): Promise<void> {
    const next: DeviceRecord = { ...record, intervalMs: record.intervalMs + this.limits.slowDownMs };
    await this.kv.set(key, JSON.stringify(next), { ttlMs: leftMs });
    // The next poll waits the longer interval from now.
    await this.kv.set(`${key}:p`, '1', { ttlMs: next.intervalMs });
  }

  private async refused(flow: string, provider: string | null, reason: string, caller: Caller): Promise<void> {
    await loginFailed(this.deps, { target: null, ip: caller.ip, throttleAs: null, details: { reason, flow, provider } }, caller.log);
  }

  private async notFound(id: string, step: string, caller: Caller): Promise<never> {
    await this.refused(id.slice(0, 64), null, `flow-not-found:${step}`, caller);
    throw new AppError('AUTH_FLOW_NOT_FOUND', 'no sign-in flow with this id');
  }
}

function unavailable(err: unknown): never {
  if (err instanceof FlowUnavailableError) throw new AppError('SERVICE_UNAVAILABLE', 'the sign-in provider is not available', { cause: err });
  throw err;
}

function expiredToken(): AppError {
  return new AppError('EXPIRED_TOKEN', 'the device id is unknown, expired or already finished; start again');
}

function stateKey(state: string): string {
  return `login:flow:s:${sha256Hex(state)}`;
}

function deviceKey(deviceId: string): string {
  return `login:flow:d:${sha256Hex(deviceId)}`;
}

function parseJson<S extends z.ZodType>(schema: S, raw: string): z.output<S> | null {
  try {
    const r = schema.safeParse(JSON.parse(raw));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}
