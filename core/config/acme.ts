import { z } from 'zod';

/*
 * tls.acme, the ACME part of the config (core/config/schema.ts; docs/configuration.md; used by
 * core/certs/acme-source.ts):
 * Let's Encrypt by default, its staging directory with `staging: true`, any other ACME CA by
 * directoryUrl, with External Account Binding for CAs that require one.
 */

/** Let's Encrypt's ACME directories: tls.acme's default, and its `staging: true`. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING_DIRECTORY = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/** tls.acme (docs/configuration.md); directoryUrl is always set in the output. */
export const acmeSchema = z
  .object({
    /** Default: Let's Encrypt (its staging directory with `staging: true`). */
    directoryUrl: z.string().url().optional(),
    /** Let's Encrypt's staging directory (untrusted certificates, generous rate limits) instead of production. */
    staging: z.boolean().default(false),
    email: z.string().email().optional(),
    /** Extra CA to trust for the ACME server itself (a private ACME server such as pebble). */
    caFile: z.string().min(1).optional(),
    renewBeforeDays: z.number().int().min(1).max(60).default(30),
    /** External Account Binding (RFC 8555 §7.3.4), for CAs that require one: their key id and base64url HMAC key. */
    externalAccountBinding: z
      .object({
        kid: z.string().min(1).max(1024),
        hmacKey: z
          .string()
          .regex(/^[A-Za-z0-9_-]+={0,2}$/, 'must be the base64url HMAC key the CA gave you')
          .refine((k) => Buffer.from(k, 'base64url').length >= 16, 'must decode to at least 16 bytes'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.staging && a.directoryUrl !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['staging'], message: 'staging selects Let\'s Encrypt\'s staging directory; remove it or directoryUrl' });
    }
  })
  .transform(({ staging, ...a }) => ({ ...a, directoryUrl: a.directoryUrl ?? (staging ? LETS_ENCRYPT_STAGING_DIRECTORY : LETS_ENCRYPT_DIRECTORY) }));
