import { z } from 'zod';
import type { Logger } from '../../lib/log.js';
import type { AuthAttempt, AuthProvider, DeviceFlow, DeviceStart, ExternalIdentity, FlowData, RedirectFlow, SecondFactor, SecondFactorSubject } from './contract.js';
import { usernameSchema } from '../auth/users.js';
import type { Owned, Registrations } from './registrations.js';
import { withTimeout } from './timeout.js';
import { pluginErrors } from '../metrics/registry.js';

/**
 * A first factor's verdict; `provider` names the plugin that decided (null: nobody accepted).
 * `ok` carries an existing account's id or an external identity core provisions.
 */
export type AuthDecision =
  | { readonly result: 'ok'; readonly userId: string; readonly provider: string }
  | { readonly result: 'ok'; readonly identity: ExternalIdentity; readonly provider: string }
  | { readonly result: 'deny'; readonly reason: string; readonly provider: string | null };

/** A device poll's verdict: a final AuthDecision, or one of RFC 8628's waits. */
export type DeviceDecision = AuthDecision | { readonly result: 'pending' | 'slow-down' | 'expired'; readonly provider: string };

/** What a flow's `begin` or `start` failed with (threw, hung, answered nonsense): the route answers 503. */
export class FlowUnavailableError extends Error {
  constructor(readonly flow: string) {
    super(`flow "${flow}" could not start`);
    this.name = 'FlowUnavailableError';
  }
}

export interface FlowInfo {
  readonly id: string;
  readonly label: string;
  readonly redirect: boolean;
  readonly device: boolean;
}

/** A registered redirect flow, called fail-closed. */
export interface HostRedirectFlow {
  readonly id: string;
  readonly plugin: string;
  /** Throws FlowUnavailableError when the plugin fails. */
  begin(ctx: { state: string; redirectUri: string; ip: string }): Promise<{ url: string; data: FlowData }>;
  /** A throw, hang or malformed answer is a deny. */
  callback(ctx: { params: Readonly<Record<string, string>>; state: string; redirectUri: string; data: FlowData; ip: string }): Promise<AuthDecision>;
}

/** A registered device flow, called fail-closed. */
export interface HostDeviceFlow {
  readonly id: string;
  readonly plugin: string;
  /** Throws FlowUnavailableError when the plugin fails. */
  start(ctx: { ip: string }): Promise<DeviceStart>;
  /** A throw, hang or malformed answer is a deny (final). */
  poll(ctx: { data: FlowData; ip: string }): Promise<DeviceDecision>;
}

/** A registered second factor, called fail-closed. */
export interface HostSecondFactor {
  readonly id: string;
  readonly plugin: string;
  /** A throw, hang or anything but a boolean is `true` (required). */
  required(subject: SecondFactorSubject): Promise<boolean>;
  /** A throw, hang or malformed answer is a refusal. */
  verify(subject: SecondFactorSubject, response: string): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Removes the user's factor (true if there was one); false when the plugin has no reset. A failure throws. */
  reset(userId: string, by: { userId: string; username: string; ip: string }): Promise<boolean>;
}

export interface HostAuth {
  /** Runs the provider chain: first ok wins, a deny stops, all skip (or none) denies. */
  authenticate(attempt: AuthAttempt): Promise<AuthDecision>;
  /** Every flow id, with the kinds registered under it (sorted by id). */
  flows(): readonly FlowInfo[];
  redirectFlow(id: string): HostRedirectFlow | undefined;
  deviceFlow(id: string): HostDeviceFlow | undefined;
  /** In registration order. */
  readonly secondFactors: readonly HostSecondFactor[];
}

/** An ExternalIdentity as core accepts it; anything else in an `ok` answer is a malformed answer. */
export const identitySchema = z.strictObject({
  username: usernameSchema,
  role: z.enum(['admin', 'user']),
  source: z.string().regex(/^[a-z0-9][a-z0-9:._-]{0,127}$/, 'a source like "ldap" or "oidc:keycloak"'),
  subject: z.string().min(1).max(512),
});

const flowData: z.ZodType<FlowData> = z.lazy(() =>
  z.union([z.string(), z.number().finite(), z.boolean(), z.null(), z.array(flowData), z.record(z.string(), flowData)]),
);
const DATA_MAX = 16_384;
const httpUrl = z
  .string()
  .max(4_096)
  .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'an http(s) URL');

const beginAnswer = z.object({ url: httpUrl, data: flowData });
const deviceStartAnswer = z.object({
  userCode: z.string().min(1).max(128),
  verificationUri: httpUrl,
  verificationUriComplete: httpUrl.optional(),
  expiresInS: z.number().int().min(1).max(86_400),
  intervalS: z.number().int().min(1).max(600),
  data: flowData,
});
const reason = z.string().min(1).max(200).catch('denied');
const finalAnswer = z.union([
  z.object({ result: z.literal('ok'), userId: z.string().min(1).max(64) }).strict(),
  z.object({ result: z.literal('ok'), identity: identitySchema }).strict(),
  z.object({ result: z.literal('deny'), reason }),
]);
const chainAnswer = z.union([finalAnswer, z.object({ result: z.literal('skip') })]);
const pollAnswer = z.union([finalAnswer, z.object({ result: z.enum(['pending', 'slow-down', 'expired']) })]);
const verifyAnswer = z.union([z.object({ ok: z.literal(true) }), z.object({ ok: z.literal(false), reason })]);

/** The auth side of the host: the password chain, redirect and device flows, second factors. */
export function createAuthChain(reg: Registrations, logger: Logger, timeoutMs: number): HostAuth {
  const providers: readonly Owned<AuthProvider>[] = [...reg.authProviders];
  const call = <S extends z.ZodType>(plugin: string, what: string, schema: S, work: () => Promise<unknown>, msg = 'plugin auth call failed; failing closed'): Promise<z.output<S>> =>
    withTimeout(timeoutMs, work).then((answer) => {
      const r = schema.safeParse(answer);
      if (!r.success) throw new Error(`${what}: malformed answer (${r.error.issues.map((i) => `${i.path.join('.') || '.'}: ${i.message}`).join('; ')})`);
      return r.data;
    }).catch((err: unknown) => {
      logger.error({ err: describe(err), plugin, call: what }, msg);
      pluginErrors.inc({ plugin, extension: 'auth' });
      throw err;
    });
  const redirect = new Map([...reg.redirectFlows].map((o) => [o.value.id, hostRedirect(o, call)]));
  const device = new Map([...reg.deviceFlows].map((o) => [o.value.id, hostDevice(o, call)]));
  const factors = Object.freeze([...reg.secondFactors].map((o) => hostFactor(o, call)));
  const labels = new Map<string, string>();
  for (const { value } of [...reg.redirectFlows, ...reg.deviceFlows]) if (!labels.has(value.id)) labels.set(value.id, String(value.label).slice(0, 200));
  const flows = Object.freeze(
    [...labels.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([id, label]) => Object.freeze({ id, label, redirect: redirect.has(id), device: device.has(id) })),
  );
  return {
    async authenticate(attempt) {
      for (const { plugin, value: provider } of providers) {
        const answer = await call(plugin, 'authenticate', chainAnswer, () => provider.authenticate(attempt), 'auth provider failed; denying').catch(
          () => ({ result: 'deny', reason: 'provider-error' }) as const,
        );
        if (answer.result === 'skip') continue;
        return decision(answer, plugin);
      }
      return { result: 'deny', reason: 'no-provider-accepted', provider: null };
    },
    flows: () => flows,
    redirectFlow: (id) => redirect.get(id),
    deviceFlow: (id) => device.get(id),
    secondFactors: factors,
  };
}

type Call = <S extends z.ZodType>(plugin: string, what: string, schema: S, work: () => Promise<unknown>, msg?: string) => Promise<z.output<S>>;

function decision(answer: z.output<typeof finalAnswer>, plugin: string): AuthDecision {
  if (answer.result === 'deny') return { result: 'deny', reason: answer.reason, provider: plugin };
  if ('identity' in answer) return { result: 'ok', identity: answer.identity, provider: plugin };
  return { result: 'ok', userId: answer.userId, provider: plugin };
}

function hostRedirect({ plugin, value: flow }: Owned<RedirectFlow>, call: Call): HostRedirectFlow {
  return Object.freeze({
    id: flow.id,
    plugin,
    async begin(ctx: { state: string; redirectUri: string; ip: string }) {
      const answer = await call(plugin, `${flow.id}.begin`, beginAnswer, () => flow.begin(ctx)).catch((err: unknown) => {
        throw Object.assign(new FlowUnavailableError(flow.id), { cause: err });
      });
      return { url: answer.url, data: boundedData(answer.data, flow.id) };
    },
    async callback(ctx: Parameters<HostRedirectFlow['callback']>[0]) {
      const answer = await call(plugin, `${flow.id}.callback`, finalAnswer, () => flow.callback(ctx)).catch(() => ({ result: 'deny', reason: 'provider-error' }) as const);
      return decision(answer, plugin);
    },
  });
}

function hostDevice({ plugin, value: flow }: Owned<DeviceFlow>, call: Call): HostDeviceFlow {
  return Object.freeze({
    id: flow.id,
    plugin,
    async start(ctx: { ip: string }) {
      const answer = await call(plugin, `${flow.id}.start`, deviceStartAnswer, () => flow.start(ctx)).catch((err: unknown) => {
        throw Object.assign(new FlowUnavailableError(flow.id), { cause: err });
      });
      const { verificationUriComplete, ...rest } = answer;
      return { ...rest, ...(verificationUriComplete !== undefined ? { verificationUriComplete } : {}), data: boundedData(answer.data, flow.id) };
    },
    async poll(ctx: { data: FlowData; ip: string }): Promise<DeviceDecision> {
      const answer = await call(plugin, `${flow.id}.poll`, pollAnswer, () => flow.poll(ctx)).catch(() => ({ result: 'deny', reason: 'provider-error' }) as const);
      if (answer.result === 'pending' || answer.result === 'slow-down' || answer.result === 'expired') return { result: answer.result, provider: plugin };
      return decision(answer as z.output<typeof finalAnswer>, plugin);
    },
  });
}

function hostFactor({ plugin, value: factor }: Owned<SecondFactor>, call: Call): HostSecondFactor {
  return Object.freeze({
    id: factor.id,
    plugin,
    required: (subject: SecondFactorSubject) => call(plugin, `${factor.id}.required`, z.boolean(), () => factor.required(subject)).catch(() => true),
    verify: (subject: SecondFactorSubject, response: string) =>
      call(plugin, `${factor.id}.verify`, verifyAnswer, () => factor.verify(subject, response)).catch(() => ({ ok: false, reason: 'factor-error' }) as const),
    reset: async (userId: string, by: { userId: string; username: string; ip: string }) => {
      const reset = factor.reset?.bind(factor);
      return reset ? call(plugin, `${factor.id}.reset`, z.boolean(), () => reset(userId, by)) : false;
    },
  });
}

/** Flow data is kept in the KV: a plugin handing over megabytes is a failure, not a store. */
function boundedData(data: FlowData, flow: string): FlowData {
  if (JSON.stringify(data).length > DATA_MAX) throw new FlowUnavailableError(flow);
  return data;
}

/** Errors are logged by message only: a plugin's error object may carry its secrets. */
function describe(err: unknown): { type: string; message: string } {
  return err instanceof Error ? { type: err.name, message: err.message.slice(0, 500) } : { type: typeof err, message: String(err).slice(0, 200) };
}
