/*
 * The agent's RPC, shared by the agent (agent/server.ts) and its client (core/sessions/
 * agent-runtime.ts): newline-delimited JSON on a Unix socket, one object per line. Every
 * request and every result is checked against these schemas on both sides; objects are
 * strict and every string and array is bounded, so nothing unexpected crosses the boundary
 * in either direction. What a request cannot name (image, user, mounts, capabilities,
 * network) is the agent's own decision.
 */
import { z } from 'zod';

/** The versions this build speaks; a request with another `v` gets UNSUPPORTED_VERSION. */
export const AGENT_PROTOCOL_VERSIONS = [1] as const;
export const AGENT_PROTOCOL_VERSION = 1;
/** A request line longer than this closes the connection (the agent never buffers more). */
export const MAX_REQUEST_LINE_BYTES = 1024 * 1024;
/** The client accepts longer lines from the agent (a list of many containers). */
export const MAX_RESPONSE_LINE_BYTES = 16 * 1024 * 1024;
/** allowToken: a connect token may not live longer than this past the request. */
export const MAX_TOKEN_TTL_MS = 10 * 60_000;

export const AGENT_ERROR_CODES = [
  /** The line is not JSON, or not a JSON object. */
  'BAD_REQUEST',
  /** The request or its params break the schema; the message lists the paths. */
  'VALIDATION_FAILED',
  'UNSUPPORTED_VERSION',
  'UNKNOWN_METHOD',
  /** Outside the limits the agent's own config sets (capacity, memory, CPUs, pids). */
  'LIMIT_EXCEEDED',
  /** Not one of this installation's session containers (or no such container). */
  'NOT_OWNED',
  /** No container engine answers, or the sessions cannot be isolated. */
  'RUNTIME_UNAVAILABLE',
  /** The container did not become ready (a short reason; details stay in the agent's log). */
  'START_FAILED',
  /** A persistent profile is mounted by a live container (one Firefox per profile). */
  'PROFILE_BUSY',
  /** No persistent profile for this user (profileEnsure creates it). */
  'PROFILE_MISSING',
  'INTERNAL',
] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

export const AGENT_METHODS = ['hello', 'status', 'prepare', 'create', 'allowToken', 'claim', 'remove', 'list', 'profileEnsure', 'profileUsage', 'profileDelete', 'activity'] as const;
export type AgentMethod = (typeof AGENT_METHODS)[number];

// ---- building blocks ------------------------------------------------------------------

const requestId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const message = z.string().max(2048);
/** Docker's full container id. */
export const containerIdSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be a 64-hex container id');
const sessionId = z.uuid();
/** Goes into a container label: plain characters only. */
const userId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/, 'must be 1–128 letters, digits or _.:@-');
const url = z
  .string()
  .max(2048)
  .refine((u) => URL.canParse(u) && ['http:', 'https:'].includes(new URL(u).protocol), 'must be an http or https URL');

function pem(label: RegExp, max: number) {
  return z
    .string()
    .max(max)
    .regex(new RegExp(`^-----BEGIN ${label.source}-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END ${label.source}-----\\r?\\n?$`), 'must be one PEM block');
}

/** Sanity bounds only: the agent's configured limits are checked after these (LIMIT_EXCEEDED). */
export const sessionLimitsSchema = z
  .object({
    memoryMb: z.number().int().min(16).max(1_048_576),
    cpus: z.number().positive().max(1024),
    pids: z.number().int().min(1).max(4_194_304),
  })
  .strict();

export const sessionPolicySchema = z
  .object({
    clipboard: z.boolean(),
    fileTransfer: z.boolean(),
    printing: z.boolean(),
    audio: z.boolean(),
    webcam: z.boolean(),
    downloads: z.boolean(),
    fileUrls: z.boolean(),
    downloadMaxMb: z.number().int().min(1).max(100).optional(),
  })
  .strict();

const empty = z.object({}).strict();

/** Names a user's profile volume on the host: a uuid only, so it can never be a path. */
export const profileUserId = z.uuid('must be a user id (a uuid)');
/** Sanity bounds only: the agent's own maxProfileMb is checked after these (LIMIT_EXCEEDED). */
export const MIN_PROFILE_MB = 32;
const profileMb = z.number().int().min(MIN_PROFILE_MB).max(1_048_576);

// ---- requests -------------------------------------------------------------------------

export const createParams = z
  .object({
    sessionId,
    userId: userId.optional(),
    pooled: z.boolean().optional(),
    limits: sessionLimitsSchema,
    policy: sessionPolicySchema,
    tls: z
      .object({
        certPem: pem(/CERTIFICATE/, 16_384),
        keyPem: pem(/(?:RSA |EC )?PRIVATE KEY/, 16_384),
      })
      .strict(),
    url: url.optional(),
    /** Mount the owner's persistent profile (it must exist: profileEnsure) as Firefox's profile. */
    profile: z.literal('persist').optional(),
  })
  .strict()
  .refine((p) => p.profile === undefined || (p.userId !== undefined && profileUserId.safeParse(p.userId).success), {
    path: ['userId'],
    message: 'a persistent profile needs the owner, a user id (a uuid)',
  });

export const allowTokenParams = z
  .object({
    containerId: containerIdSchema,
    tokenHash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters'),
    /** Unix milliseconds; at most MAX_TOKEN_TTL_MS ahead of the agent's clock. */
    expiresAt: z
      .number()
      .int()
      .positive()
      .refine((t) => t <= Date.now() + MAX_TOKEN_TTL_MS, `must be at most ${MAX_TOKEN_TTL_MS / 60_000} minutes ahead`),
  })
  .strict();

export const claimParams = z
  .object({
    containerId: containerIdSchema,
    userId,
    url: url.optional(),
    limits: sessionLimitsSchema.optional(),
  })
  .strict();

export const removeParams = z.object({ containerId: containerIdSchema }).strict();

/** activity: a session container's xpra clients and their last input (nothing else is asked of it). */
export const activityParams = z.object({ containerId: containerIdSchema }).strict();

export const profileEnsureParams = z.object({ userId: profileUserId, sizeMb: profileMb }).strict();
export const profileUserParams = z.object({ userId: profileUserId }).strict();

export const PARAMS = {
  hello: empty,
  status: empty,
  prepare: empty,
  create: createParams,
  allowToken: allowTokenParams,
  claim: claimParams,
  remove: removeParams,
  list: empty,
  profileEnsure: profileEnsureParams,
  profileUsage: profileUserParams,
  profileDelete: profileUserParams,
  activity: activityParams,
} as const satisfies Record<AgentMethod, z.ZodType>;

export type AgentParams = { [M in AgentMethod]: z.output<(typeof PARAMS)[M]> };

/** `traceparent` as W3C Trace Context level 1 writes it (version 00); `tracestate` bounded. */
export const traceContextSchema = z
  .object({
    traceparent: z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, 'must be a W3C traceparent (00-<trace id>-<span id>-<flags>)'),
    tracestate: z.string().max(512).optional(),
  })
  .strict();

/** The envelope; `params` is checked against the method's schema once the method is known. */
export const requestSchema = z
  .object({
    v: z.number().int(),
    id: requestId,
    method: z.string().max(64),
    params: z.record(z.string().max(256), z.unknown()),
    /**
     * W3C trace context of the caller's span (docs/tracing.md), only when control traces: the
     * agent's spans for the request continue that trace. Not part of what the agent does.
     */
    trace: traceContextSchema.optional(),
  })
  .strict();

// ---- results --------------------------------------------------------------------------

export const agentLimitsSchema = z
  .object({
    maxContainers: z.number().int().positive(),
    /** Sum of the containers' memory limits. */
    memoryMb: z.number().int().positive(),
    /** Per container. */
    pidsLimit: z.number().int().positive(),
    /** Per container (the host's cores). */
    maxCpus: z.number().positive(),
    /** A create waits this long for the container to become ready. */
    readyTimeoutMs: z.number().int().positive(),
    maxTokenTtlMs: z.number().int().positive(),
    /** Largest persistent profile volume the agent makes. */
    maxProfileMb: z.number().int().positive(),
  })
  .strict();
export type AgentLimits = z.output<typeof agentLimitsSchema>;

const upstream = z.object({ host: z.string().max(64), port: z.number().int().min(1).max(65535) }).strict();

export const runtimeContainerSchema = z
  .object({
    containerId: containerIdSchema,
    sessionId: z.string().max(128),
    userId: z.string().max(128).nullable(),
    pooled: z.boolean(),
    running: z.boolean(),
    upstream: upstream.nullable(),
  })
  .strict();

export const containerExitSchema = z
  .object({
    containerId: containerIdSchema,
    sessionId: z.string().max(128),
    exitCode: z.number().int().nullable(),
    oomKilled: z.boolean(),
  })
  .strict();

export const statusResult = z
  .object({
    engineReachable: z.boolean(),
    image: z.object({ tag: z.string().max(256), present: z.boolean() }).strict(),
    network: z.object({ name: z.string().max(64), applied: z.boolean() }).strict(),
    firewall: z.object({ applied: z.boolean() }).strict(),
    /** True when a session can start now (what /ready reports). */
    ready: z.boolean(),
    /** Why not, for an operator; null when ready. */
    reason: message.nullable(),
  })
  .strict();
export type AgentStatus = z.output<typeof statusResult>;

/** A profile volume as statfs sees it: its size (the image), used and free space, in MB. */
export const profileUsageSchema = z
  .object({
    sizeMb: z.number().int().min(0),
    usedMb: z.number().int().min(0),
    freeMb: z.number().int().min(0),
  })
  .strict();
export type ProfileUsage = z.output<typeof profileUsageSchema>;

/**
 * What xpra says of a session's clients: how many are attached, and the seconds since the
 * most recent input (keyboard, pointer) of any of them (null when none is attached); and how
 * many connect tokens the session has accepted so far.
 */
export const sessionActivitySchema = z
  .object({
    clients: z.number().int().min(0).max(1000),
    idleSeconds: z.number().int().min(0).max(10 * 365 * 86_400).nullable(),
    tokensSpent: z.number().int().min(0).max(10_000_000),
  })
  .strict();

export const RESULTS = {
  hello: z
    .object({
      agentVersion: z.string().max(64),
      protocolVersions: z.array(z.number().int()).max(16),
      limits: agentLimitsSchema,
    })
    .strict(),
  status: statusResult,
  prepare: z.object({ image: z.string().max(256) }).strict(),
  create: runtimeContainerSchema,
  allowToken: empty,
  claim: empty,
  remove: empty,
  list: z.object({ containers: z.array(runtimeContainerSchema).max(100_000) }).strict(),
  /** created: made now; grownFromMb: the size before a growth, else null. */
  profileEnsure: z.object({ usage: profileUsageSchema, created: z.boolean(), grownFromMb: z.number().int().nullable() }).strict(),
  /** usage null: the user has no profile. */
  profileUsage: z.object({ usage: profileUsageSchema.nullable() }).strict(),
  /** deleted false: there was none. */
  profileDelete: z.object({ deleted: z.boolean() }).strict(),
  activity: sessionActivitySchema,
} as const satisfies Record<AgentMethod, z.ZodType>;

export type AgentResults = { [M in AgentMethod]: z.output<(typeof RESULTS)[M]> };

// ---- what the agent writes ------------------------------------------------------------

export const agentErrorSchema = z.object({ code: z.enum(AGENT_ERROR_CODES), message }).strict();
export type AgentErrorBody = z.output<typeof agentErrorSchema>;

/** Responses, plus events the agent pushes (container exits; prepare's build progress). */
export const agentMessageSchema = z.union([
  z.object({ v: z.literal(1), id: requestId, ok: z.literal(true), result: z.unknown() }).strict(),
  // id null: the request's id could not be read.
  z.object({ v: z.literal(1), id: requestId.nullable(), ok: z.literal(false), error: agentErrorSchema }).strict(),
  z.object({ v: z.literal(1), event: z.literal('exit'), data: containerExitSchema }).strict(),
  z.object({ v: z.literal(1), event: z.literal('progress'), id: requestId, line: z.string().max(4096) }).strict(),
]);
export type AgentMessage = z.output<typeof agentMessageSchema>;

/** "path: problem; path: problem" — the paths a VALIDATION_FAILED message lists. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .slice(0, 10)
    .map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.') || '(root)'}: ${i.message}`)
    .join('; ')
    .slice(0, 2000);
}
