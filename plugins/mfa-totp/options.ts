import { z } from 'zod';

/** The plugin's options; see docs/auth-totp.md. */
export const totpOptions = z
  .object({
    /** Shown by authenticator apps next to the account; in the otpauth:// URI. */
    issuer: z
      .string()
      .min(1)
      .max(64)
      .refine((s) => !s.includes(':'), 'the issuer cannot contain ":" (it separates issuer and account in the URI)')
      .default('HackStream'),
    /**
     * The AES-256-GCM key that encrypts the TOTP secrets in the database, created (0600) at
     * first start. A relative path is resolved against the plugin's private folder
     * (`<dataDir>/plugin-data/mfa-totp/`), where the default lives.
     */
    keyFile: z.string().min(1).default('totp.key'),
    /** The first-factor providers (plugin names) after which TOTP is asked for; `all` by default. */
    providers: z.union([z.literal('all'), z.array(z.string().regex(/^[a-z0-9][a-z0-9-]*$/)).min(1)]).default('all'),
  })
  .strict();

export type TotpOptions = z.output<typeof totpOptions>;
export type TotpOptionsInput = z.input<typeof totpOptions>;
