import { readFileSync } from 'node:fs';
import * as oidc from 'openid-client';
import type { Logger } from '../../core/plugin/contract.js';
import { nodeFetch } from './fetch.js';
import type { IssuerOptions } from './options.js';

/** After a failed discovery, the next flow request tries again only after this long. */
const RETRY_AFTER_MS = 10_000;

export class IssuerUnavailableError extends Error {
  constructor(key: string, cause: unknown) {
    super(`OpenID provider ${key} is unavailable (discovery failed); its sign-in fails closed until it answers`, { cause });
    this.name = 'IssuerUnavailableError';
  }
}

/** Reads what the options name on disk, once: a missing file stops start-up naming the path. */
export function readSecrets(key: string, o: IssuerOptions): { clientSecret: string; ca: string | undefined } {
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`auth-oidc: issuers.${key}.${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
    }
  };
  const clientSecret = o.clientSecret ?? read('clientSecretFile', o.clientSecretFile ?? '').replace(/\r?\n$/, '');
  if (clientSecret === '') throw new Error(`auth-oidc: issuers.${key}.clientSecretFile: ${o.clientSecretFile} is empty`);
  const ca = o.caFile === undefined ? undefined : read('caFile', o.caFile);
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`auth-oidc: issuers.${key}.caFile: ${o.caFile} holds no PEM certificate`);
  return { clientSecret, ca };
}

/**
 * One OpenID provider's configuration, discovered lazily: a provider that does not answer
 * at start-up leaves start-up going (logged); each flow request then tries discovery again
 * (at most every RETRY_AFTER_MS) and fails closed until one succeeds.
 */
export class Issuer {
  private config: oidc.Configuration | undefined;
  private pending: Promise<oidc.Configuration> | undefined;
  private lastFailure = 0;
  private lastError: unknown;

  constructor(
    readonly key: string,
    readonly options: IssuerOptions,
    private readonly secrets: { clientSecret: string; ca: string | undefined },
    private readonly logger: Logger,
  ) {}

  /** Discovery with the timeout; resolves either way (the outcome is logged). */
  async warmUp(): Promise<boolean> {
    try {
      await this.discover();
      return true;
    } catch {
      return false;
    }
  }

  /** The discovered configuration, or IssuerUnavailableError. */
  async get(): Promise<oidc.Configuration> {
    if (this.config) return this.config;
    if (this.pending) return this.pending;
    if (Date.now() - this.lastFailure < RETRY_AFTER_MS) throw new IssuerUnavailableError(this.key, this.lastError);
    return this.discover();
  }

  private discover(): Promise<oidc.Configuration> {
    const o = this.options;
    const auth = o.clientAuth === 'client_secret_post' ? oidc.ClientSecretPost(this.secrets.clientSecret) : oidc.ClientSecretBasic(this.secrets.clientSecret);
    const fetch = nodeFetch(this.secrets.ca);
    this.pending = oidc
      .discovery(new URL(o.issuer), o.clientId, undefined, auth, { timeout: o.discoveryTimeoutMs / 1000, [oidc.customFetch]: fetch })
      .then((config) => {
        config.timeout = o.requestTimeoutMs / 1000;
        // ID tokens from the token endpoint are verified against the provider's JWKS too, not only trusted for coming over TLS.
        oidc.enableNonRepudiationChecks(config);
        this.config = config;
        this.logger.info({ issuerKey: this.key, issuer: o.issuer }, 'oidc issuer discovered');
        return config;
      })
      .catch((err: unknown) => {
        this.lastFailure = Date.now();
        this.lastError = err;
        this.logger.error({ issuerKey: this.key, issuer: o.issuer, err: describe(err) }, 'oidc issuer unreachable: its sign-in fails closed until discovery succeeds');
        throw new IssuerUnavailableError(this.key, err);
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }
}

/** An error as a short string for logs and audit: openid-client's code and message, never a token. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = 'code' in err && typeof err.code === 'string' ? `${err.code}: ` : '';
  // openid-client wraps the precise failure ("unexpected JWT \"aud\" claim value") as the cause.
  const cause = err.cause instanceof Error && err.cause.message !== err.message ? `: ${err.cause.message}` : '';
  return `${code}${err.message}${cause}`.slice(0, 200);
}
