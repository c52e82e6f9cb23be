/*
 * The answers of the /v1 routes as zod schemas: what each route declares as its `responses`
 * and what the OpenAPI document (core/api/openapi.ts) shows. A schema given a name with
 * `named` becomes one entry of the document's components when it is a route's whole answer
 * (referenced there; inlined where another schema holds it).
 * They describe what the handlers write (core/auth, core/sessions views); the contract test
 * (test/contract/openapi.test.ts) checks real answers against them.
 *
 * Every key on the wire is snake_case (docs/decisions.md); core's own types stay camelCase.
 * Each shape that differs has its `…ToWire` (answers) or `…FromWire` (bodies) here, next to
 * its schema, typed by the schema so the two cannot drift apart.
 */
import { z } from 'zod';
import type { ProfileUsage } from '../../lib/agent-protocol.js';
import type { AuditPage } from '../audit/query.js';
import type { DeviceGrant, TokenPair, UserView } from '../auth/index.js';
import type { Quota, Usage } from '../plugin/contract.js';
import { quotaFields } from '../plugin/quota-schema.js';
import { APPS } from '../sessions/view.js';
import { AUDIT_RESULTS, ROLES } from '../store/entities.js';

const names = new Map<z.ZodType, string>();

/** Gives a schema its name in the document's components. */
export function named<T extends z.ZodType>(name: string, schema: T): T {
  names.set(schema, name);
  return schema;
}

/** The component name of a schema given one with `named`. */
export function nameOf(schema: z.ZodType): string | undefined {
  return names.get(schema);
}

const isoTime = z.string().describe('ISO 8601 time');

export const errorSchema = named(
  'Error',
  z.object({
    error: z.object({
      code: z.string().describe('stable code (core/errors.ts)'),
      message: z.string().describe('for people'),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  }),
);

export const tokenPairSchema = named(
  'TokenPair',
  z.object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().describe('seconds'),
    refresh_token: z.string(),
    refresh_expires_at: isoTime,
  }),
);

export function tokenPairToWire(p: TokenPair): z.output<typeof tokenPairSchema> {
  return { access_token: p.accessToken, token_type: p.tokenType, expires_in: p.expiresIn, refresh_token: p.refreshToken, refresh_expires_at: p.refreshExpiresAt };
}

/** The quota fields on the wire: internal name → wire name (cpus is the same). */
const QUOTA_WIRE_NAMES = {
  maxSessions: 'max_sessions',
  cpus: 'cpus',
  memoryMb: 'memory_mb',
  idleTimeoutMinutes: 'idle_timeout_minutes',
  maxDurationMinutes: 'max_duration_minutes',
  storageMb: 'storage_mb',
  profileMb: 'profile_mb',
} as const satisfies { readonly [K in keyof Quota]-?: string };

type QuotaKey = keyof typeof QUOTA_WIRE_NAMES;
type WireQuotaKey = (typeof QUOTA_WIRE_NAMES)[QuotaKey];
/** Quota-shaped values under their wire names. */
export type WireQuota<V> = { [K in QuotaKey as (typeof QUOTA_WIRE_NAMES)[K]]: V };
const QUOTA_KEYS = Object.keys(QUOTA_WIRE_NAMES) as QuotaKey[];

/** Each quota field's bounds under its wire name. */
export const wireQuotaFields: WireQuota<z.ZodNumber> = {
  max_sessions: quotaFields.maxSessions,
  cpus: quotaFields.cpus,
  memory_mb: quotaFields.memoryMb,
  idle_timeout_minutes: quotaFields.idleTimeoutMinutes,
  max_duration_minutes: quotaFields.maxDurationMinutes,
  storage_mb: quotaFields.storageMb,
  profile_mb: quotaFields.profileMb,
};

/** A per-user override on the wire: any subset of the fields. */
export const quotaOverrideWireSchema = z.object(wireQuotaFields).strict().partial();

/** Quota fields (a whole quota, an override, a patch with nulls) under their wire names. */
export function quotaToWire<V>(q: { readonly [K in QuotaKey]?: V }): Partial<WireQuota<V>> {
  const out: Partial<Record<WireQuotaKey, V>> = {};
  for (const key of QUOTA_KEYS) {
    const v = q[key];
    if (v !== undefined) out[QUOTA_WIRE_NAMES[key]] = v;
  }
  return out;
}

/** Quota fields from their wire names back to core's. */
export function quotaFromWire<V>(q: Partial<WireQuota<V>>): { [K in QuotaKey]?: V } {
  const out: { [K in QuotaKey]?: V } = {};
  for (const key of QUOTA_KEYS) {
    const v = q[QUOTA_WIRE_NAMES[key]];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

export const userSchema = named(
  'User',
  z.object({
    id: z.uuid(),
    username: z.string(),
    role: z.enum(ROLES),
    disabled: z.boolean(),
    source: z.string().nullable().describe('the identity source owning the account; null: local'),
    quota: quotaOverrideWireSchema.describe("per-user overrides of the role's quota"),
    created_at: isoTime,
    updated_at: isoTime,
  }),
);

export function userToWire(u: UserView): z.output<typeof userSchema> {
  return { id: u.id, username: u.username, role: u.role, disabled: u.disabled, source: u.source, quota: quotaToWire(u.quota), created_at: u.createdAt, updated_at: u.updatedAt };
}

export const userPageSchema = z.object({ items: z.array(userSchema), next_cursor: z.string().nullable() });

export function userPageToWire(page: { items: UserView[]; nextCursor: string | null }): z.output<typeof userPageSchema> {
  return { items: page.items.map(userToWire), next_cursor: page.nextCursor };
}

const profileUsage = named(
  'ProfileUsage',
  z.object({ size_mb: z.number().int().min(0), used_mb: z.number().int().min(0), free_mb: z.number().int().min(0) }).strict(),
);

/** A profile volume's usage on the wire (the agent RPC says sizeMb, usedMb, freeMb). */
export function profileUsageToWire(u: ProfileUsage | null): z.output<typeof profileUsage> | null {
  return u ? { size_mb: u.sizeMb, used_mb: u.usedMb, free_mb: u.freeMb } : null;
}

const effectiveQuotaSchema = z.object({ ...wireQuotaFields, profile_mb: wireQuotaFields.profile_mb.optional() });

/** The quota that applies to a user, under its wire names. */
export function effectiveQuotaToWire(q: Quota): z.output<typeof effectiveQuotaSchema> {
  return {
    max_sessions: q.maxSessions,
    cpus: q.cpus,
    memory_mb: q.memoryMb,
    idle_timeout_minutes: q.idleTimeoutMinutes,
    max_duration_minutes: q.maxDurationMinutes,
    storage_mb: q.storageMb,
    ...(q.profileMb !== undefined ? { profile_mb: q.profileMb } : {}),
  };
}

export const quotasSchema = z.object({
  quota: effectiveQuotaSchema,
  usage: z.object({ sessions: z.number().int(), storage_mb: z.number(), profile: profileUsage.nullable() }),
  override: quotaOverrideWireSchema,
});

export function quotasToWire(a: { quota: Quota; usage: Usage; profile: ProfileUsage | null; override: Partial<Quota> }): z.output<typeof quotasSchema> {
  return {
    quota: effectiveQuotaToWire(a.quota),
    usage: { sessions: a.usage.sessions, storage_mb: a.usage.storageMb, profile: profileUsageToWire(a.profile) },
    override: quotaToWire(a.override),
  };
}

export const auditPageSchema = z.object({
  items: z.array(
    named(
      'AuditRow',
      z.object({
        id: z.string(),
        at: isoTime,
        actor: z.string(),
        action: z.string(),
        target: z.string().nullable(),
        source_ip: z.string().nullable(),
        result: z.enum(AUDIT_RESULTS),
        details: z.record(z.string(), z.unknown()).describe('recorded as the event gave it (its keys are not renamed)'),
        prev_hash: z.string(),
        hash: z.string(),
      }),
    ),
  ),
  next_cursor: z.string().nullable(),
});

export function auditPageToWire(page: AuditPage): z.output<typeof auditPageSchema> {
  return {
    items: page.items.map((r) => ({
      id: r.id,
      at: r.at,
      actor: r.actor,
      action: r.action,
      target: r.target,
      source_ip: r.sourceIp,
      result: r.result,
      details: r.details,
      prev_hash: r.prevHash,
      hash: r.hash,
    })),
    next_cursor: page.nextCursor,
  };
}

export const flowsSchema = z.object({ flows: z.array(z.object({ id: z.string(), label: z.string(), redirect: z.boolean(), device: z.boolean() })) });
export const redirectSchema = z.object({ url: z.string().describe('also in the Location header (302)') });
export const deviceGrantSchema = z.object({
  device_id: z.string(),
  user_code: z.string(),
  verification_uri: z.string(),
  verification_uri_complete: z.string().optional(),
  expires_in: z.number().int().describe('seconds'),
  interval: z.number().int().describe('seconds between polls'),
});

export function deviceGrantToWire(g: DeviceGrant): z.output<typeof deviceGrantSchema> {
  return {
    device_id: g.deviceId,
    user_code: g.userCode,
    verification_uri: g.verificationUri,
    ...(g.verificationUriComplete !== undefined ? { verification_uri_complete: g.verificationUriComplete } : {}),
    expires_in: g.expiresIn,
    interval: g.interval,
  };
}

export const connectSchema = named(
  'Connect',
  z.object({
    host: z.string(),
    port: z.number().int(),
    sni: z.string(),
    token: z.string().describe('one-time: xpra login password'),
    expires_at: isoTime,
    ca_cert: z.string().describe('PEM of the session CA'),
  }),
);

const SESSION_STATES = ['starting', 'ready', 'connected', 'idle', 'stopping', 'stopped', 'failed'] as const;

export const sessionSchema = named(
  'Session',
  z.object({
    session_id: z.uuid(),
    user_id: z.uuid(),
    state: z.enum(SESSION_STATES),
    app: z.enum(APPS),
    url: z.string().nullable(),
    profile: z.enum(['ephemeral', 'persist']),
    quality: z.enum(['low', 'auto', 'high']),
    hostname: z.string().nullable(),
    pooled: z.boolean(),
    created_at: isoTime,
    updated_at: isoTime,
    ended_at: isoTime.nullable(),
    deadline_at: isoTime.nullable(),
    idle_since: isoTime.nullable(),
    failure_reason: z.string().nullable(),
  }),
);

export const sessionCreatedSchema = sessionSchema.extend({ connect: connectSchema });
export const sessionListSchema = z.object({ items: z.array(sessionSchema) });

export const profileSchema = z.object({ profile: profileUsage.nullable() });
export const profileDeletedSchema = z.object({ deleted: z.boolean() });
export const userProfileSchema = z.object({ user_id: z.uuid(), profile: profileUsage.nullable() });
export const userProfileDeletedSchema = z.object({ user_id: z.uuid(), deleted: z.boolean() });

export const healthSchema = z.object({ status: z.literal('ok') });
const check = z.union([z.object({ ok: z.literal(true) }), z.object({ ok: z.literal(false), reason: z.string() })]);
export const readySchema = named(
  'Readiness',
  z.object({
    status: z.enum(['ready', 'not_ready']),
    checks: z.record(z.string(), check).describe('store, kv and, where sessions run, agent, engine, image, network, firewall (docs/api.md)'),
    error: errorSchema.shape.error.optional().describe('when not ready (503 NOT_READY)'),
  }),
);
