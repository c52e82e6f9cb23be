/*
 * The answers of the /v1 routes as zod schemas: what each route declares as its `responses`
 * and what the OpenAPI document (core/api/openapi.ts) shows. A schema given a name with
 * `named` becomes one entry of the document's components when it is a route's whole answer
 * (referenced there; inlined where another schema holds it).
 * They describe what the handlers write (core/auth, core/sessions views); the contract test
 * (test/contract/openapi.test.ts) checks real answers against them.
 */
import { z } from 'zod';
import { profileUsageSchema } from '../../lib/agent-protocol.js';
import { quotaOverrideSchema, quotaFields } from '../plugin/quota-schema.js';
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
    accessToken: z.string(),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int().describe('seconds'),
    refreshToken: z.string(),
    refreshExpiresAt: isoTime,
  }),
);

export const userSchema = named(
  'User',
  z.object({
    id: z.uuid(),
    username: z.string(),
    role: z.enum(ROLES),
    disabled: z.boolean(),
    source: z.string().nullable().describe('the identity source owning the account; null: local'),
    quota: quotaOverrideSchema.describe("per-user overrides of the role's quota"),
    createdAt: isoTime,
    updatedAt: isoTime,
  }),
);

export const userPageSchema = z.object({ items: z.array(userSchema), nextCursor: z.string().nullable() });

const profileUsage = named('ProfileUsage', profileUsageSchema);

export const quotasSchema = z.object({
  quota: z.object({ ...quotaFields, profileMb: quotaFields.profileMb.optional() }),
  usage: z.object({ sessions: z.number().int(), storageMb: z.number(), profile: profileUsage.nullable() }),
  override: quotaOverrideSchema,
});

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
        sourceIp: z.string().nullable(),
        result: z.enum(AUDIT_RESULTS),
        details: z.record(z.string(), z.unknown()),
        prevHash: z.string(),
        hash: z.string(),
      }),
    ),
  ),
  nextCursor: z.string().nullable(),
});

export const flowsSchema = z.object({ flows: z.array(z.object({ id: z.string(), label: z.string(), redirect: z.boolean(), device: z.boolean() })) });
export const redirectSchema = z.object({ url: z.string().describe('also in the Location header (302)') });
export const deviceGrantSchema = z.object({
  deviceId: z.string(),
  userCode: z.string(),
  verificationUri: z.string(),
  verificationUriComplete: z.string().optional(),
  expiresIn: z.number().int().describe('seconds'),
  interval: z.number().int().describe('seconds between polls'),
});

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
