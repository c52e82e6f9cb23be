import { z } from 'zod';
import type { ControlPlane } from '../../auth/index.js';
import { clientIp, route, type AnyRoute, type ApiContext } from '../route.js';
import { deviceGrantSchema, deviceGrantToWire, flowsSchema, redirectSchema, tokenPairSchema, tokenPairToWire } from '../schemas.js';

const secondFactorBody = z.strictObject({
  challenge_id: z.string().min(1).max(256),
  factor: z.string().min(1).max(64),
  response: z.string().min(1).max(1024),
});

// Whatever the provider sends back (code, state, error, iss, session_state…); repeated keys are refused.
const callbackQuery = z
  .record(z.string().max(128), z.string().max(8_192))
  .refine((q) => Object.keys(q).length <= 50, 'at most 50 query parameters');

const pollBody = z.strictObject({ device_id: z.string().min(1).max(256) });

/**
 * Second factors and sign-in flows (contract v2): POST /v1/login/second-factor, and under
 * /v1/auth/flows the list, a redirect flow's begin and callback, a device flow's start and
 * poll. All public: each is a step of logging in. The work is in core/auth/flows.ts.
 */
export function authFlowRoutes(control: ControlPlane): AnyRoute[] {
  const caller = (ctx: ApiContext) => ({ ip: clientIp(ctx), log: ctx.state.log });
  const flowId = (ctx: ApiContext): string => String(ctx.params.id ?? '');
  return [
    route({
      method: 'POST',
      path: '/v1/login/second-factor',
      access: 'public',
      summary: 'Answer a second-factor challenge',
      responses: { 200: tokenPairSchema },
      body: secondFactorBody,
      async handle(ctx, { body }) {
        ctx.body = tokenPairToWire(
          await control.secondFactor({ challengeId: body.challenge_id, factor: body.factor, response: body.response, ip: clientIp(ctx) }, ctx.state.log),
        );
      },
    }),
    route({
      method: 'GET',
      path: '/v1/auth/flows',
      access: 'public',
      summary: 'The sign-in flows this server offers',
      responses: { 200: flowsSchema },
      handle(ctx) {
        ctx.body = { flows: control.flows.list() };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/auth/flows/:id/begin',
      access: 'public',
      summary: "Start a redirect flow (302 to the provider)",
      responses: { 302: redirectSchema },
      async handle(ctx) {
        const { url } = await control.flows.begin(flowId(ctx), ctx.host, caller(ctx));
        ctx.status = 302;
        ctx.set('Location', url);
        ctx.body = { url };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/auth/flows/:id/callback',
      access: 'public',
      summary: "A redirect flow's callback",
      responses: { 200: tokenPairSchema },
      query: callbackQuery,
      async handle(ctx, { query }) {
        ctx.body = tokenPairToWire(await control.flows.callback(flowId(ctx), query, caller(ctx)));
      },
    }),
    route({
      method: 'POST',
      path: '/v1/auth/flows/:id/device',
      access: 'public',
      summary: 'Start a device flow',
      responses: { 200: deviceGrantSchema },
      async handle(ctx) {
        ctx.body = deviceGrantToWire(await control.flows.deviceStart(flowId(ctx), caller(ctx)));
      },
    }),
    route({
      method: 'POST',
      path: '/v1/auth/flows/:id/device/poll',
      access: 'public',
      summary: 'Poll a device flow',
      responses: { 200: tokenPairSchema },
      body: pollBody,
      async handle(ctx, { body }) {
        ctx.body = tokenPairToWire(await control.flows.devicePoll(flowId(ctx), body.device_id, caller(ctx)));
      },
    }),
  ];
}
