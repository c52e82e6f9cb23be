import { clearTokens, loadTokens, saveTokens, trustOf, type CliConfig, type StoredTokens } from './config.js';
import { CliError, EXIT } from './errors.js';
import { pinnedRequest, type Endpoint, type HttpResult } from './http.js';
import { secondFactor, type CodePrompt } from './sso.js';

/** Asks for credentials when no refresh token is alive (a TTY prompt, or stdin). */
export type CredentialPrompt = () => Promise<{ username: string; password: string }>;

/** A token pair as the API answers it (snake_case on the wire; stored camelCase in tokens.json). */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  /** Seconds. */
  expires_in: number;
  refresh_expires_at: string;
}

/** Where a second factor's code comes from; `canRetry`: a refused code may be asked again (a prompt, not --code). */
export interface SecondFactorSource {
  ask: CodePrompt;
  canRetry: boolean;
}

export function endpointOf(c: CliConfig): Endpoint {
  return { url: new URL(c.api_url), ...(c.address ? { address: c.address } : {}) };
}

export function errorOf(r: HttpResult): { code: string; message: string } {
  const e = (r.json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  return { code: typeof e?.code === 'string' ? e.code : `HTTP_${r.status}`, message: typeof e?.message === 'string' ? e.message : r.text.slice(0, 200) };
}

/** The API's error codes → what the user reads and the exit code. */
export function toCliError(r: HttpResult): CliError {
  const { code, message } = errorOf(r);
  switch (code) {
    case 'AUTH_INVALID_CREDENTIALS':
      return new CliError(EXIT.AUTH, 'wrong username or password');
    case 'AUTH_REQUIRED':
    case 'AUTH_TOKEN_INVALID':
      return new CliError(EXIT.AUTH, 'not logged in (or the login expired): run hackstream login');
    case 'QUOTA_EXCEEDED':
      return new CliError(EXIT.QUOTA, `quota reached: ${message}. Stop a session first (hackstream list, hackstream stop <id>)`);
    case 'SESSION_START_FAILED':
      return new CliError(EXIT.SESSION_START_FAILED, `the session failed to start on the server: ${message}. Try again; if it keeps failing ask the administrator to check the server log`);
    case 'RUNTIME_UNAVAILABLE':
    case 'CAPACITY_REACHED':
    case 'SERVICE_UNAVAILABLE':
    case 'QUOTA_UNAVAILABLE':
      return new CliError(EXIT.RUNTIME_UNAVAILABLE, `the server cannot run sessions right now (${code}): ${message}`);
    case 'AUTH_SECOND_FACTOR_REQUIRED':
      return new CliError(EXIT.AUTH, 'this login needs a second factor: run hackstream login (or pass --code)');
    case 'AUTH_FLOW_DENIED':
      return new CliError(EXIT.AUTH, 'the sign-in was refused');
    case 'EXPIRED_TOKEN':
      return new CliError(EXIT.AUTH, 'the sign-in code expired: start the login again');
    case 'RATE_LIMITED':
      return new CliError(EXIT.AUTH, `too many attempts: ${message}. Wait a minute and try again`);
    default:
      return new CliError(EXIT.FAILURE, `${code}: ${message}`, { apiCode: code });
  }
}

/** The API as the logged-in user: refreshes silently, prompts only when the refresh token is dead. */
export class ApiClient {
  private readonly endpoint: Endpoint;

  constructor(
    private readonly config: CliConfig,
    private readonly prompt?: CredentialPrompt,
    private readonly secondFactorSource?: SecondFactorSource,
    private readonly requestTimeoutMs?: number,
  ) {
    this.endpoint = endpointOf(config);
  }

  /**
   * The same client with requests ended after `ms` of silence: re-attaching asks quick
   * questions, and a request stuck on a dead network must not hold the give-up for 2 min.
   */
  withRequestTimeout(ms: number): ApiClient {
    return new ApiClient(this.config, this.prompt, this.secondFactorSource, ms);
  }

  raw(method: string, path: string, body?: unknown, token?: string): Promise<HttpResult> {
    return pinnedRequest(this.endpoint, trustOf(this.config), method, path, body, token, this.requestTimeoutMs);
  }

  async login(username: string, password: string): Promise<void> {
    await this.finishLogin(await this.raw('POST', '/v1/login', { username, password }), username);
  }

  /**
   * A login's answer (password or SSO): asks for the second factor when the server wants
   * one, then stores the tokens. `username` unknown (SSO): read from /v1/me. Returns it.
   */
  async finishLogin(r: HttpResult, username: string | undefined): Promise<string> {
    let pair: TokenPair;
    if (r.status === 200) pair = r.json as TokenPair;
    else if (r.status === 401 && errorOf(r).code === 'AUTH_SECOND_FACTOR_REQUIRED' && this.secondFactorSource) {
      pair = await secondFactor(this, r, this.secondFactorSource.ask, this.secondFactorSource.canRetry);
    } else throw toCliError(r);
    let name = username;
    if (name === undefined) {
      const me = await this.raw('GET', '/v1/me', undefined, pair.access_token);
      if (me.status !== 200) throw toCliError(me);
      name = String((me.json as { username?: unknown }).username ?? '');
    }
    this.store(pair, name);
    return name;
  }

  async logout(): Promise<boolean> {
    const t = loadTokens();
    if (!t) return false;
    // Best effort on the server: the local tokens go either way.
    try {
      await this.raw('POST', '/v1/logout', undefined, await this.accessToken(false));
    } finally {
      clearTokens();
    }
    return true;
  }

  /** A JSON call as the user; throws CliError on any non-2xx. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let r = await this.raw(method, path, body, await this.accessToken(true));
    // Revoked or expired early on the server: one refresh (or login) and one retry.
    if (r.status === 401) {
      await this.renew(true);
      r = await this.raw(method, path, body, await this.accessToken(true));
    }
    if (r.status < 200 || r.status > 299) throw toCliError(r);
    return r.json as T;
  }

  /** A valid access token, refreshed (or logged in again) when needed. */
  token(): Promise<string> {
    return this.accessToken(true);
  }

  private async accessToken(allowPrompt: boolean): Promise<string> {
    const t = loadTokens();
    if (t && t.accessExpiresAt > Date.now()) return t.accessToken;
    return (await this.renew(allowPrompt)).accessToken;
  }

  private async renew(allowPrompt: boolean): Promise<StoredTokens> {
    const t = loadTokens();
    if (t) {
      const r = await this.raw('POST', '/v1/token/refresh', { refresh_token: t.refreshToken });
      if (r.status === 200) return this.store(r.json as TokenPair, t.username);
      if (r.status !== 401) throw toCliError(r);
      clearTokens();
    }
    if (!allowPrompt || !this.prompt) throw new CliError(EXIT.AUTH, 'not logged in (or the login expired): run hackstream login');
    const { username, password } = await this.prompt();
    await this.login(username, password);
    const fresh = loadTokens();
    if (!fresh) throw new CliError(EXIT.AUTH, 'login did not store tokens');
    return fresh;
  }

  private store(p: TokenPair, username: string): StoredTokens {
    const ttl = p.expires_in * 1000;
    const t: StoredTokens = {
      accessToken: p.access_token,
      refreshToken: p.refresh_token,
      // Treated as expired a little early so a request never races the expiry.
      accessExpiresAt: Date.now() + ttl - Math.min(5_000, ttl / 4),
      refreshExpiresAt: p.refresh_expires_at,
      username,
    };
    saveTokens(t);
    return t;
  }
}

/** A session as GET /v1/sessions lists it (the fields the CLI and the launcher show). */
export interface SessionRow {
  session_id: string;
  state: string;
  app: string;
  url: string | null;
  quality: string;
  created_at: string;
}
