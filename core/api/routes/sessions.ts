import { z } from 'zod';
import type { SessionManager } from '../../sessions/manager.js';
import { createSessionBody, sessionView } from '../../sessions/view.js';
import { clientIp, principal, route, type AnyRoute, type ApiContext } from '../route.js';
import { connectSchema, sessionCreatedSchema, sessionListSchema, sessionSchema } from '../schemas.js';

const listQuery = z.strictObject({
  /** Admins: every user's sessions. */
  all: z.enum(['0', '1', 'true', 'false']).optional(),
  /** Also stopped and failed sessions (newest first, at most 200). */
  ended: z.enum(['0', '1', 'true', 'false']).optional(),
});

const flag = (v: string | undefined) => v === '1' || v === 'true';

/** A session id in a path: anything that is not a uuid is simply not found. */
function sessionId(ctx: ApiContext): string {
  const id = String(ctx.params.id ?? '').toLowerCase();
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? id : '00000000-0000-0000-0000-000000000000';
}

/** POST/GET /v1/sessions, GET /v1/sessions/:id, POST /v1/sessions/:id/connect and /stop. */
export function sessionRoutes(sessions: SessionManager): AnyRoute[] {
  return [
    route({
      method: 'POST',
      path: '/v1/sessions',
      access: 'user',
      summary: 'Launch a session',
      responses: { 201: sessionCreatedSchema },
      body: createSessionBody,
      async handle(ctx, { body }) {
        const { session, connect } = await sessions.create(principal(ctx).user, body, { sourceIp: clientIp(ctx), log: ctx.state.log });
        ctx.status = 201;
        ctx.set('Location', `/v1/sessions/${session.session_id}`);
        ctx.body = { ...session, connect };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/sessions',
      access: 'user',
      summary: 'List sessions',
      responses: { 200: sessionListSchema },
      query: listQuery,
      async handle(ctx, { query }) {
        ctx.body = { items: await sessions.list(principal(ctx).user, { all: flag(query.all), includeEnded: flag(query.ended) }) };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/sessions/:id',
      access: 'user',
      summary: 'One session',
      responses: { 200: sessionSchema },
      async handle(ctx) {
        ctx.body = sessionView(await sessions.get(principal(ctx).user, sessionId(ctx)));
      },
    }),
    route({
      method: 'POST',
      path: '/v1/sessions/:id/connect',
      access: 'user',
      summary: 'A fresh one-time connect token',
      responses: { 200: connectSchema },
      async handle(ctx) {
        ctx.body = await sessions.connect(principal(ctx).user, sessionId(ctx), { sourceIp: clientIp(ctx), log: ctx.state.log });
      },
    }),
    route({
      method: 'POST',
      path: '/v1/sessions/:id/stop',
      access: 'user',
      summary: 'Stop a session',
      responses: { 200: sessionSchema },
      async handle(ctx) {
        ctx.body = await sessions.stop(principal(ctx).user, sessionId(ctx), { sourceIp: clientIp(ctx), log: ctx.state.log });
      },
    }),
  ];
}
