import { isIP } from 'node:net';
import { z } from 'zod';
import { gatewaySchema } from '../../lib/limits.js';
import { tracingSchema } from '../../lib/tracing-config.js';
import { acmeSchema } from './acme.js';

export { gatewaySchema };

const LDH_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** A DNS hostname: lowercase LDH labels, at most 253 characters. */
export const hostname = z
  .string()
  .trim()
  .toLowerCase()
  .refine((h) => h.length <= 253 && h.split('.').every((l) => LDH_LABEL.test(l)), {
    message: 'must be a DNS hostname such as "hackstream.example.org" (letters, digits, hyphens, dots)',
  });

/** "host:port" or "[v6]:port" → {host, port}. Port 0 asks the OS for a free port (tests). */
export const listenAddress = z.string().transform((value, ctx) => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || port > 65535 || (m[1] !== undefined && isIP(m[1]) !== 6)) {
    ctx.addIssue({ code: 'custom', message: 'must be "host:port", e.g. "0.0.0.0:443" or "[::]:443"' });
    return z.NEVER;
  }
  return { host, port };
});

const count = (def: number) => z.number().int().positive().max(1_000_000).default(def);

export const tlsSchema = z
  .object({
    /**
     * self-signed: the HackStream CA issues the API cert (default).
     * files: the operator's certFile/keyFile, reloaded when they change.
     * acme: obtained and renewed with ACME TLS-ALPN-01 on the gateway's port.
     */
    mode: z.enum(['self-signed', 'files', 'acme']).default('self-signed'),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    acme: acmeSchema.optional(),
    /** Lifetime of per-session certificates. */
    sessionCertTtlHours: z.number().int().min(1).max(24 * 30).default(24),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.mode === 'files' && (!t.certFile || !t.keyFile)) {
      ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'tls.mode "files" needs both tls.certFile and tls.keyFile' });
    }
  })
  // tls.mode "acme" without tls.acme: Let's Encrypt's production directory.
  .transform((t) => (t.mode === 'acme' && !t.acme ? { ...t, acme: acmeSchema.parse({}) } : t));

const cidr = z.string().refine((v) => {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(v.trim());
  return !!m && isIP(m[1]!) === 4 && Number(m[2]) <= 32;
}, 'must be an IPv4 CIDR such as "10.1.2.0/24"');

const onOff = (def: boolean) => z.boolean().default(def);

export const sessionsSchema = z
  .object({
    /** Docker engine: unix:///var/run/docker.sock (default), a socket path, or tcp://host:port. */
    dockerHost: z
      .string()
      .regex(/^(unix:\/\/\/|tcp:\/\/|\/)/, 'must be unix:///path, tcp://host:port or an absolute socket path')
      .optional(),
    /** Run this image instead of the one built from images/firefox-xpra (it must exist). */
    image: z.string().min(1).max(256).optional(),
    /**
     * Names this control plane on the containers it owns (a label), so reconciliation never
     * touches another instance's containers on a shared engine. Default: derived from the
     * host name and dataDir, stable across restarts.
     */
    instanceId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and hyphens, at most 63').optional(),
    /** Lifetime of a connect token (single use). */
    connectTokenTtlSeconds: z.number().int().min(5).max(60).default(30),
    /** The port clients dial for sessions when it differs from listen's (NAT, port forward). */
    connectPort: z.number().int().min(1).max(65535).optional(),
    /** Containers kept started and ready for the next launch. */
    pool: z
      .object({
        size: z.number().int().min(0).max(64).default(1),
        /** Limits a pool container starts with (raised or lowered to the user's quota at claim). */
        memoryMb: z.number().int().min(256).max(65_536).default(2048),
        cpus: z.number().min(0.1).max(64).default(1),
      })
      .strict()
      .prefault({}),
    /** What this host may run at once, pool included; launches beyond it get 503. */
    capacity: z
      .object({
        maxContainers: z.number().int().min(1).max(10_000).default(20),
        /** Sum of the containers' memory limits. */
        memoryMb: z.number().int().min(256).max(16_777_216).default(16_384),
      })
      .strict()
      .prefault({}),
    /** Processes per container (fork bombs stop here). */
    pidsLimit: z.number().int().min(64).max(32_768).default(512),
    /** A container must report ready within this time. */
    readyTimeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
    /** Operator caps on top of the user's quota (seconds); the smaller one applies. */
    idleTimeoutCapSeconds: z.number().int().min(1).max(7 * 86_400).optional(),
    maxDurationCapSeconds: z.number().int().min(1).max(30 * 86_400).optional(),
    /** How often idle and duration deadlines are checked. */
    sweepIntervalMs: z.number().int().min(100).max(600_000).default(5_000),
    /**
     * How often the store, the runtime and the routes are reconciled while running (orphan
     * containers, stuck rows, stale routes), not only at start-up.
     */
    reconcileIntervalSeconds: z.number().int().min(1).max(3600).default(10),
    /** Session switches: clipboard on; file transfer, printing, audio, webcam off. */
    policy: z
      .object({
        clipboard: onOff(true),
        fileTransfer: onOff(false),
        printing: onOff(false),
        audio: onOff(false),
        webcam: onOff(false),
        downloads: onOff(true),
        fileUrls: onOff(false),
        /**
         * The largest download sent to the client, in MB (docs/downloads.md). At most 100:
         * xpra 3.1's own file-size-limit on both ends.
         */
        downloadMaxMb: z.number().int().min(1).max(100).default(100),
      })
      .strict()
      .prefault({}),
    /** Persistent profiles (docs/profiles.md): one loop-mounted ext4 volume per user under <dataDir>/profiles. */
    profiles: z
      .object({
        /** The agent makes no volume larger than this, whatever a quota says. */
        maxMb: z.number().int().min(32).max(1_048_576).default(8192),
        /** A user's volume when the quota policy sets no profileMb. */
        defaultMb: z.number().int().min(32).max(1_048_576).default(512),
      })
      .strict()
      .refine((p) => p.defaultMb <= p.maxMb, { path: ['defaultMb'], message: 'must not exceed maxMb' })
      .prefault({}),
    network: z
      .object({
        name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/).default('hackstream-sessions'),
        /** The Linux bridge's name (at most 15 characters). */
        bridge: z.string().regex(/^[a-z][a-z0-9-]{0,14}$/, 'lowercase, at most 15 characters').default('hs-sessions0'),
        /** Private or link-local ranges the browsers may reach despite the default block. */
        allow: z.array(cidr).max(64).default([]),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** GET /v1/metrics for Prometheus (docs/metrics.md). */
export const metricsSchema = z
  .object({
    /**
     * SHA-256 (64 hex digits) of the scrape credential, a random token of at least 32 bytes that
     * Prometheus sends as `Authorization: Bearer <token>`. Without it only an admin's token reads metrics.
     */
    scrapeTokenSha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be the SHA-256 of the scrape token as 64 hex digits (see docs/metrics.md)')
      .transform((h) => h.toLowerCase())
      .optional(),
    /** How often the audit chain is verified for hackstream_audit_chain_valid; 0 turns it off. */
    auditVerifyIntervalSeconds: z.number().int().min(0).max(604_800).default(3600),
  })
  .strict();

/** Request limits per minute (core/rate-limit.ts; 429 RATE_LIMITED with Retry-After past them). */
export const rateLimitsSchema = z
  .object({
    /** GET /ready per client address (an IPv6 /64 counts as one), counted in each control process. */
    readyPerMinute: count(120),
    /**
     * Connect tokens per user (POST /v1/sessions/:id/connect and the portal's): each one runs a
     * command in the session's container and writes an audit row. Counted in the key-value store.
     */
    connectPerMinute: count(60),
  })
  .strict();

/** A `plugins` key: a built-in or npm package name, or a path (see core/plugin/resolve.ts). */
const pluginKey = z
  .string()
  .max(1024)
  .refine((k) => /^(\.{1,2})?\//.test(k) ? !k.includes('\0') : /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/.test(k) && k.length <= 214, {
    message: 'a plugin key is a built-in or npm package name (lowercase, e.g. "auth-local" or "@acme/hs-ldap") or a path starting with ./, ../ or /',
  });

export const configSchema = z
  .object({
    listen: listenAddress.prefault('0.0.0.0:443'),
    publicHost: hostname.default('localhost'),
    sessionDomain: hostname.default('sessions.localhost'),
    /** State and generated certificates; relative paths are resolved against the working directory. */
    dataDir: z.string().min(1).default('.'),
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    /** Postgres for accounts, sessions and audit; without it an embedded store runs under dataDir. */
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
      .optional(),
    /**
     * Plugins to enable, each with its own options (validated by the plugin's schema). A key is
     * a built-in's name, an npm package name (the server's node_modules or pluginsDir) or a
     * path starting with ./, ../ or / (relative to the config file's folder). Only listed
     * plugins run; auth-local and quota-default are listed by default.
     */
    plugins: z.record(pluginKey, z.unknown()).default({
      'auth-local': {},
      'quota-default': {},
    }),
    /**
     * Where package keys are also looked up (`<pluginsDir>/node_modules/<pkg>`, then
     * `<pluginsDir>/<pkg>`). Default `<dataDir>/plugins`; relative to the config file's folder.
     */
    pluginsDir: z.string().min(1).max(4096).optional(),
    /** Prefix of every Redis key and channel, so deployments (or test runs) can share one Redis. */
    redisPrefix: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, 'letters, digits, ":", "_" or "-", at most 64').default('hackstream:'),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
    gateway: gatewaySchema.prefault({}),
    tls: tlsSchema.prefault({}),
    sessions: sessionsSchema.prefault({}),
    /** OpenTelemetry traces (docs/tracing.md); absent: off, no SDK loaded. */
    tracing: tracingSchema.optional(),
    metrics: metricsSchema.prefault({}),
    rateLimits: rateLimitsSchema.prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.publicHost === c.sessionDomain || c.publicHost.endsWith(`.${c.sessionDomain}`)) {
      ctx.addIssue({
        code: 'custom',
        path: ['publicHost'],
        message: `must not be inside the session domain "${c.sessionDomain}"`,
      });
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
/** The validated config; `configFile` is the file it was read from (path keys are relative to its folder). */
export type Config = z.output<typeof configSchema> & { readonly configFile?: string };
export type { GatewayLimits } from '../../lib/limits.js';
export type TlsConfig = z.output<typeof tlsSchema>;
export type SessionsConfig = z.output<typeof sessionsSchema>;
export type MetricsConfig = z.output<typeof metricsSchema>;
export type RateLimitsConfig = z.output<typeof rateLimitsSchema>;
