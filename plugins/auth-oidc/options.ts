import { z } from 'zod';
import { FLOW_ID_PATTERN } from '../../core/plugin/contract.js';

/** A scope token as RFC 6749 §3.3 allows it. */
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

const httpsUrl = z.string().url().refine((u) => u.startsWith('https://'), 'must be an https:// URL');

/** One OpenID provider. Its key under `issuers` is the flow id (`/v1/auth/flows/<key>/…`). */
export const issuerSchema = z
  .object({
    /** The issuer identifier; discovery reads `<issuer>/.well-known/openid-configuration`. */
    issuer: httpsUrl,
    /** What sign-in pages and `hackstream login --sso` show. Default: the key. */
    label: z.string().min(1).max(80).optional(),
    clientId: z.string().min(1).max(255),
    clientSecret: z.string().min(1).optional(),
    /** A file holding the client secret (trailing newline ignored); read once at start-up. */
    clientSecretFile: z.string().min(1).optional(),
    /** How the client authenticates at the token endpoint. */
    clientAuth: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
    scopes: z.array(z.string().regex(SCOPE)).min(1).default(['openid', 'profile', 'email']).refine((s) => s.includes('openid'), 'must include "openid"'),
    /** The ID token claim that becomes the HackStream username (lower-cased; 3–64 of a-z 0-9 . _ -). */
    usernameClaim: z.string().min(1).default('preferred_username'),
    /** A claim (dotted path for nested ones, e.g. `realm_access.roles`) whose values roleMap maps. */
    roleClaim: z.string().min(1).optional(),
    /** Claim value → role. Any value mapping to admin makes an admin; everyone else is a user. */
    roleMap: z.record(z.string(), z.enum(['admin', 'user'])).default({}),
    /** Extra CA certificates (PEM) trusted for this issuer, on top of the system's. */
    caFile: z.string().min(1).optional(),
    /** Discovery gives up after this long (at start-up and on each later try). */
    discoveryTimeoutMs: z.number().int().min(100).max(8_000).default(5_000),
    /** Each token, device or JWKS request gives up after this long. */
    requestTimeoutMs: z.number().int().min(100).max(60_000).default(10_000),
  })
  .strict()
  .refine((o) => (o.clientSecret === undefined) !== (o.clientSecretFile === undefined), {
    message: 'give exactly one of clientSecret and clientSecretFile',
    path: ['clientSecret'],
  })
  .refine((o) => o.roleClaim !== undefined || Object.keys(o.roleMap).length === 0, {
    message: 'roleMap needs a roleClaim',
    path: ['roleMap'],
  });

export const optionsSchema = z
  .object({
    issuers: z
      .record(z.string().regex(FLOW_ID_PATTERN, 'an issuer key is a flow id: a-z, 0-9 and -, up to 63'), issuerSchema)
      .default({}),
  })
  .strict();

export type IssuerOptions = z.output<typeof issuerSchema>;
export type OidcOptions = z.output<typeof optionsSchema>;
export type OidcOptionsInput = z.input<typeof optionsSchema>;

export const exampleConfig: OidcOptionsInput = {
  issuers: {
    keycloak: {
      issuer: 'https://sso.example.org/realms/hackstream',
      label: 'Company SSO',
      clientId: 'hackstream',
      // clientSecretFile: '/etc/hackstream/keycloak-client-secret' keeps it out of the config file.
      clientSecret: 'replace-with-the-client-secret',
      scopes: ['openid', 'profile', 'email'],
      usernameClaim: 'preferred_username',
      roleClaim: 'groups',
      roleMap: { 'hackstream-admins': 'admin' },
    },
  },
};
