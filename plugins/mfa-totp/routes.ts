import Router from '@koa/router';
import { z } from 'zod';
import { jsonBody, type PluginPrincipal, type PluginRouter, type PluginRouteState } from '../../core/plugin/contract.js';
import { RouteError } from './route-error.js';
import { CODE_PATTERN, type Actor, type Enrolment, type Refusal, type TotpService, type TotpStatus } from './totp.js';

/** As apps show it: spaces (`123 456`) are dropped. */
const code = z
  .string()
  .max(16, 'a 6-digit code')
  .transform((s) => s.replace(/\s/g, ''))
  .pipe(z.string().regex(CODE_PATTERN, 'a 6-digit code'));
const confirmBody = z.object({ code }).strict();
const emptyBody = z.union([z.undefined(), z.object({}).strict()]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** HTTP answers to the service's refusals: stable codes, documented in docs/auth-totp.md. */
const REFUSALS: Record<Refusal, { status: number; code: string; message: string }> = {
  'already-enrolled': { status: 409, code: 'MFA_TOTP_ALREADY_ENROLLED', message: 'TOTP is already enrolled; an admin reset removes it' },
  'no-pending-enrolment': { status: 409, code: 'MFA_TOTP_NO_PENDING_ENROLMENT', message: 'no enrolment to confirm: POST /v1/plugins/mfa-totp/enrolment first' },
  'enrolment-expired': { status: 409, code: 'MFA_TOTP_ENROLMENT_EXPIRED', message: 'the enrolment expired: start it again' },
  'wrong-code': { status: 400, code: 'MFA_TOTP_CODE_INVALID', message: 'the code is not valid for this secret now' },
  'not-enrolled': { status: 404, code: 'MFA_TOTP_NOT_ENROLLED', message: 'the user has no TOTP factor' },
  'unknown-user': { status: 404, code: 'NOT_FOUND', message: 'no such user' },
};

/** The answers on the wire: snake_case, as every /v1 key (the service's types stay camelCase). */
function enrolmentToWire(e: Enrolment) {
  return { secret: e.secret, otpauth_uri: e.otpauthUri, qr_png: e.qrPng, qr_svg: e.qrSvg, expires_at: e.expiresAt };
}

function statusToWire(s: TotpStatus) {
  return { enrolled: s.enrolled, pending: s.pending, confirmed_at: s.confirmedAt, recovery_codes_left: s.recoveryCodesLeft };
}

/**
 * The routes under /v1/plugins/mfa-totp/: the caller's own enrolment and status, and the
 * admin reset. Every route needs a principal (a valid access token).
 */
export function totpRoutes(service: TotpService): PluginRouter {
  const router = new Router<PluginRouteState>();
  router.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (!(err instanceof RouteError)) throw err;
      ctx.status = err.status;
      ctx.body = { error: { code: err.code, message: err.message } };
    }
  });
  // Core's reader: its size limit and its 400/413/415 answers, as on core's routes.
  router.use(jsonBody);

  router.post('/enrolment', async (ctx) => {
    const actor = actorOf(ctx.state);
    parse(emptyBody, ctx.request.body);
    const out = await service.enrol(actor);
    if (!out.ok) throw refusal(out.refusal);
    ctx.status = 201;
    ctx.body = enrolmentToWire(out.value);
  });

  router.post('/enrolment/confirm', async (ctx) => {
    const actor = actorOf(ctx.state);
    const { code } = parse(confirmBody, ctx.request.body);
    const out = await service.confirm(actor, code);
    if (!out.ok) throw refusal(out.refusal);
    ctx.body = { enrolled: true, recovery_codes: out.value.recoveryCodes };
  });

  router.get('/status', async (ctx) => {
    const actor = actorOf(ctx.state);
    ctx.body = statusToWire(await service.status(actor.userId));
  });

  router.delete('/users/:userId', async (ctx) => {
    const actor = actorOf(ctx.state);
    const userId = ctx.params.userId ?? '';
    if (!UUID.test(userId)) throw new RouteError(400, 'VALIDATION_FAILED', 'user_id: not a user id');
    if (ctx.state.principal?.role !== 'admin') {
      await service.resetForbidden(actor, userId.toLowerCase());
      throw new RouteError(403, 'FORBIDDEN', 'only an admin can reset a TOTP factor');
    }
    const out = await service.reset(actor, userId.toLowerCase());
    if (!out.ok) throw refusal(out.refusal);
    ctx.status = 204;
  });
  return router;
}

function actorOf(state: PluginRouteState): Actor {
  const p: PluginPrincipal | null = state.principal;
  if (!p) throw new RouteError(401, 'AUTH_REQUIRED', 'sign in first (Authorization: Bearer <access token>)');
  return { userId: p.userId, username: p.username, ip: state.ip };
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const first = r.error.issues[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  throw new RouteError(400, 'VALIDATION_FAILED', `${where}${first?.message ?? 'invalid body'}`);
}

function refusal(r: Refusal): RouteError {
  const { status, code, message } = REFUSALS[r];
  return new RouteError(status, code, message);
}
