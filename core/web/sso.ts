import type { RouterMiddleware } from '@koa/router';
import { z } from 'zod';
import type { ControlPlane } from '../auth/index.js';
import { AppError } from '../errors.js';
import type { ApiState } from '../api/errors.js';
import { clientIp, type ApiContext } from '../api/route.js';
import { readCookie, setSessionCookies } from './cookie-auth.js';

/*
 * SSO in the portal: a redirect flow (auth-oidc's Authorization Code + PKCE, nonce, state —
 * all checked by the plugin and core/auth/flows.ts as for the API) whose end sets the portal's
 * cookies instead of answering JSON tokens.
 *
 * The provider returns to the one redirect URI the operator registered for the API,
 * `/v1/auth/flows/<id>/callback`. The portal's begin leaves a cookie holding the flow's state;
 * a callback that carries that cookie with the same state is the portal's (cookies, then a
 * redirect to `/`); any other goes on to the API's JSON callback. The cookie also binds the
 * sign-in to the browser that started it (a callback URL pasted into another browser has no
 * cookie, so no portal login). It is `SameSite=Lax`: the provider's redirect back is a
 * cross-site top-level navigation, which a Strict cookie would not ride.
 */

export const SSO_COOKIE = '__Host-hs_sso';
/** A pending second factor after SSO: the challenge id, never in a URL. */
export const CHALLENGE_COOKIE = '__Host-hs_mfa';
const FLOW_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const STATE = /^[A-Za-z0-9_-]{43}$/;
const STATE_TTL_S = 600;
const CHALLENGE_TTL_S = 300;

const callbackQuery = z
  .record(z.string().max(128), z.string().max(8_192))
  .refine((q) => Object.keys(q).length <= 50, 'at most 50 query parameters');

function setCookie(ctx: ApiContext, name: string, value: string, maxAgeS: number, sameSite: 'Lax' | 'Strict'): void {
  ctx.append('Set-Cookie', `${name}=${value}; Path=/; Max-Age=${maxAgeS}; HttpOnly; Secure; SameSite=${sameSite}`);
}

/** Where the portal shows what went wrong: a code in the fragment (never sent back to a server). */
function failTo(ctx: ApiContext, code: string): void {
  ctx.status = 303;
  ctx.set('Location', `/#sso-error=${encodeURIComponent(code)}`);
}

/** GET /web/sso/:id (begin, a link on the sign-in page) and the portal's side of the callback. */
export function ssoRoutes(control: ControlPlane): { path: string; handler: RouterMiddleware<ApiState> }[] {
  const caller = (ctx: ApiContext) => ({ ip: clientIp(ctx), log: ctx.state.log });
  return [
    {
      path: '/web/sso/:id',
      async handler(ctx) {
        const id = String(ctx.params.id ?? '');
        if (!FLOW_ID.test(id)) throw new AppError('AUTH_FLOW_NOT_FOUND', 'no sign-in flow with this id');
        const { url } = await control.flows.begin(id, ctx.host, caller(ctx));
        const state = new URL(url).searchParams.get('state') ?? '';
        if (!STATE.test(state)) throw new AppError('SERVICE_UNAVAILABLE', 'the sign-in provider gave no usable state');
        setCookie(ctx, SSO_COOKIE, state, STATE_TTL_S, 'Lax');
        ctx.status = 302;
        ctx.set('Location', url);
      },
    },
    {
      path: '/v1/auth/flows/:id/callback',
      async handler(ctx, next) {
        const kept = readCookie(ctx.get('cookie'), SSO_COOKIE);
        if (!kept) return next();
        const parsed = callbackQuery.safeParse({ ...ctx.query });
        if (!parsed.success || parsed.data.state !== kept) return next();
        setCookie(ctx, SSO_COOKIE, '', 0, 'Lax');
        try {
          setSessionCookies(ctx, await control.flows.callback(String(ctx.params.id ?? ''), parsed.data, caller(ctx)));
        } catch (err) {
          const d = err instanceof AppError ? err.details : undefined;
          if (err instanceof AppError && err.code === 'AUTH_SECOND_FACTOR_REQUIRED' && typeof d?.challenge_id === 'string') {
            setCookie(ctx, CHALLENGE_COOKIE, d.challenge_id, CHALLENGE_TTL_S, 'Strict');
            const factor = Array.isArray(d.factors) && typeof d.factors[0] === 'string' ? d.factors[0] : 'totp';
            ctx.status = 303;
            ctx.set('Location', `/#second-factor=${encodeURIComponent(factor)}`);
            return;
          }
          ctx.state.log.warn({ code: err instanceof AppError ? err.code : 'INTERNAL' }, 'portal sso refused');
          return failTo(ctx, err instanceof AppError ? err.code : 'INTERNAL');
        }
        ctx.status = 303;
        ctx.set('Location', '/');
      },
    },
  ];
}

/** The challenge id kept by an SSO sign-in that needs a second factor (the portal's form sends none). */
export function keptChallenge(ctx: ApiContext): string | undefined {
  return readCookie(ctx.get('cookie'), CHALLENGE_COOKIE);
}

export function clearChallenge(ctx: ApiContext): void {
  setCookie(ctx, CHALLENGE_COOKIE, '', 0, 'Strict');
}
