import type Koa from 'koa';
import type { ControlPlane, Principal, TokenPair } from '../auth/index.js';
import { AppError } from '../errors.js';
import type { ApiState } from '../api/errors.js';
import { clientIp, type ApiContext } from '../api/route.js';
import { RefreshTokenEntity } from '../store/entities.js';

/*
 * The portal's credentials: the API's own token pair, kept in two HttpOnly, Secure,
 * SameSite=Strict cookies (`__Host-` prefix: no Domain, Path=/, Secure), never visible to
 * scripts. Every state-changing call also needs the `X-HackStream-CSRF: 1` header (a custom
 * header a cross-site form or image cannot send, and our CORS-less API never lets a script of
 * another origin add) and, when the browser sends one, an Origin of this host.
 */

export const ACCESS_COOKIE = '__Host-hs_at';
export const REFRESH_COOKIE = '__Host-hs_rt';
export const CSRF_HEADER = 'x-hackstream-csrf';

type Ctx = ApiContext | Koa.ParameterizedContext<ApiState>;

function cookie(name: string, value: string, maxAgeS: number): string {
  return `${name}=${value}; Path=/; Max-Age=${maxAgeS}; HttpOnly; Secure; SameSite=Strict`;
}

/** Sets both cookies from a token pair. */
export function setSessionCookies(ctx: Ctx, pair: TokenPair): void {
  const refreshS = Math.max(1, Math.floor((Date.parse(pair.refreshExpiresAt) - Date.now()) / 1000));
  ctx.append('Set-Cookie', cookie(ACCESS_COOKIE, pair.accessToken, pair.expiresIn));
  ctx.append('Set-Cookie', cookie(REFRESH_COOKIE, pair.refreshToken, refreshS));
}

export function clearSessionCookies(ctx: Ctx): void {
  ctx.append('Set-Cookie', cookie(ACCESS_COOKIE, '', 0));
  ctx.append('Set-Cookie', cookie(REFRESH_COOKIE, '', 0));
}

/** A cookie's value from the request (tokens are `[\x21-\x7e]` without `;` or `,`). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      return /^[\x21-\x2b\x2d-\x3a\x3c-\x7e]{1,256}$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

/** Refuses a request another site could have made for the user. */
export function checkCsrf(ctx: Ctx): void {
  if (ctx.get(CSRF_HEADER) !== '1') throw new AppError('FORBIDDEN', 'missing the X-HackStream-CSRF header');
  checkOrigin(ctx, false);
}

/** The Origin must name this host; `required` for WebSocket upgrades (browsers always send it). */
export function checkOrigin(ctx: Ctx, required: boolean): void {
  const origin = ctx.get('origin');
  if (!origin) {
    if (required) throw new AppError('FORBIDDEN', 'missing Origin');
    return;
  }
  if (origin !== `https://${ctx.get('host')}`) throw new AppError('FORBIDDEN', 'cross-origin request refused');
}

/**
 * The cookie's user. An expired access token is renewed from the refresh cookie once per
 * refresh token (concurrent requests share the renewal, so rotation never looks like reuse).
 */
export function cookieAuth(control: ControlPlane): (ctx: Ctx) => Promise<Principal> {
  const renewing = new Map<string, Promise<TokenPair>>();
  return async (ctx) => {
    const access = readCookie(ctx.get('cookie'), ACCESS_COOKIE);
    const p = access ? await control.tokens.authenticate(access) : null;
    if (p) return p;
    const refresh = readCookie(ctx.get('cookie'), REFRESH_COOKIE);
    if (!refresh) throw new AppError('AUTH_REQUIRED', 'sign in first');
    let pending = renewing.get(refresh);
    if (!pending) {
      pending = control.tokens.refresh(refresh, clientIp(ctx as ApiContext), ctx.state.log);
      renewing.set(refresh, pending);
      pending.finally(() => setTimeout(() => renewing.delete(refresh), 10_000).unref()).catch(() => {});
    }
    let pair: TokenPair;
    try {
      pair = await pending;
    } catch {
      clearSessionCookies(ctx);
      throw new AppError('AUTH_REQUIRED', 'sign in again');
    }
    setSessionCookies(ctx, pair);
    const renewed = await control.tokens.authenticate(pair.accessToken);
    if (!renewed) throw new AppError('AUTH_REQUIRED', 'sign in again');
    return renewed;
  };
}

/**
 * The portal's sign-out: this browser's login (its refresh token family) ends, with the same
 * audit row as a logout; the user's other logins (the CLI, another browser) keep working.
 * `POST /v1/logout` instead ends every token of the user. An access token of the family dies
 * with it (authentication checks the family is live; every process's cache is emptied).
 */
export async function endThisLogin(control: ControlPlane, p: Principal, ip: string): Promise<void> {
  await control.tokens.logout(p, ip, async (manager) => {
    await manager
      .getRepository(RefreshTokenEntity)
      .createQueryBuilder()
      .update()
      .set({ revokedAt: new Date() })
      .where('family_id = :family AND revoked_at IS NULL', { family: p.family })
      .execute();
  });
}
