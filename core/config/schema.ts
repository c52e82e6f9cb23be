import { isIP } from 'node:net';
import { z } from 'zod';

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

const ms = (def: number) => z.number().int().positive().max(86_400_000).default(def);
const count = (def: number) => z.number().int().positive().max(1_000_000).default(def);

export const gatewaySchema = z
  .object({
    /** A ClientHello must be complete within this time (total deadline, not an idle timer). */
    clientHelloTimeoutMs: ms(10_000),
    /** Bytes buffered per pending connection while its ClientHello is read. */
    maxClientHelloBytes: z.number().int().min(1024).max(1_048_576).default(65_536),
    /** Open connections in total; further ones are closed at accept. */
    maxConnections: count(10_000),
    /** Open connections from one client IP. */
    maxConnectionsPerIp: count(512),
    /** Connections from one client IP still sending their ClientHello. */
    maxPendingPerIp: count(128),
    upstreamConnectTimeoutMs: ms(5_000),
    /** A tunnel with no bytes either way for this long is closed (xpra pings keep live ones busy). */
    tunnelIdleTimeoutMs: ms(600_000),
    /** TLS handshake deadline on the terminated (API) path. */
    tlsHandshakeTimeoutMs: ms(10_000),
    httpHeadersTimeoutMs: ms(10_000),
    httpRequestTimeoutMs: ms(30_000),
    httpKeepAliveTimeoutMs: ms(5_000),
    /** On shutdown, open tunnels may drain for this long before they are cut. */
    shutdownDrainMs: ms(10_000),
  })
  .strict();

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
    acme: z
      .object({
        directoryUrl: z.string().url(),
        email: z.string().email().optional(),
        /** Extra CA to trust for the ACME server itself (a private ACME server such as pebble). */
        caFile: z.string().min(1).optional(),
        renewBeforeDays: z.number().int().min(1).max(60).default(30),
      })
      .strict()
      .optional(),
    /** Lifetime of per-session certificates. */
    sessionCertTtlHours: z.number().int().min(1).max(24 * 30).default(24),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.mode === 'files' && (!t.certFile || !t.keyFile)) {
      ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'tls.mode "files" needs both tls.certFile and tls.keyFile' });
    }
    if (t.mode === 'acme' && !t.acme) {
      ctx.addIssue({ code: 'custom', path: ['acme'], message: 'tls.mode "acme" needs tls.acme.directoryUrl' });
    }
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
     * Plugins to enable, by name, each with its own options (validated by the plugin's schema).
     * Only listed plugins run; auth-local and quota-default are listed by default.
     */
    plugins: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'plugin names are lowercase, digits and hyphens'), z.unknown()).default({
      'auth-local': {},
      'quota-default': {},
    }),
    /** Prefix of every Redis key and channel, so deployments (or test runs) can share one Redis. */
    redisPrefix: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, 'letters, digits, ":", "_" or "-", at most 64').default('hackstream:'),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
    gateway: gatewaySchema.prefault({}),
    tls: tlsSchema.prefault({}),
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
export type Config = z.output<typeof configSchema>;
export type GatewayLimits = z.output<typeof gatewaySchema>;
export type TlsConfig = z.output<typeof tlsSchema>;
