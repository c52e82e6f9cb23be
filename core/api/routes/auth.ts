import { z } from 'zod';
import type { ControlPlane } from '../../auth/index.js';
import { clientIp, principal, route, type AnyRoute } from '../route.js';
import { tokenPairSchema, tokenPairToWire } from '../schemas.js';
import { authFlowRoutes } from './auth-flows.js';

const loginBody = z.strictObject({
  // Any text up to these lengths: an odd username is simply unknown (the same 401).
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(4096),
});

const refreshBody = z.strictObject({ refresh_token: z.string().min(1).max(256) });

/** POST /v1/login, /v1/token/refresh, /v1/logout, and the second-factor and flow routes. */
export function authRoutes(control: ControlPlane): AnyRoute[] {
  return [
    route({
      method: 'POST',
      path: '/v1/login',
      access: 'public',
      summary: 'Log in with a password',
      responses: { 200: tokenPairSchema },
      body: loginBody,
      async handle(ctx, { body }) {
        ctx.set('Cache-Control', 'no-store');
        ctx.body = tokenPairToWire(await control.login({ username: body.username, password: body.password, ip: clientIp(ctx) }, ctx.state.log));
      },
    }),
    route({
      method: 'POST',
      path: '/v1/token/refresh',
      access: 'public',
      summary: 'Trade a refresh token for a new pair (single use)',
      responses: { 200: tokenPairSchema },
      body: refreshBody,
      async handle(ctx, { body }) {
        ctx.set('Cache-Control', 'no-store');
        ctx.body = tokenPairToWire(await control.tokens.refresh(body.refresh_token, clientIp(ctx), ctx.state.log));
      },
    }),
    route({
      method: 'POST',
      path: '/v1/logout',
      access: 'user',
      summary: "End the caller's token family",
      responses: { 204: null },
      async handle(ctx) {
        const p = principal(ctx);
        await control.tokens.logout(p, clientIp(ctx), (m, id) => control.users.revokeAll(m, id));
        ctx.status = 204;
      },
    }),
    ...authFlowRoutes(control),
  ];
}
