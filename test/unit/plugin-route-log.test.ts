import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Router from '@koa/router';
import type { ApiState } from '../../core/api/errors.js';
import type { PluginRouteState } from '../../core/plugin/contract.js';
import { startPluginHost, type CallerResolver, type PluginHost } from '../../core/plugin/host.js';
import { capturingLogger, fakeServices, inline, serveApi } from '../fixtures/plugins/harness.js';

/*
 * The request log line of a plugin route names the caller's user id, as core's routes do:
 * through core's real request-context middleware, its lines captured from the logger.
 */

describe('plugin routes: the request log line', () => {
  let host: PluginHost;
  let api: { url: string; close(): Promise<void> };
  const { logger, lines } = capturingLogger();

  // Stands in for core's bearer-token lookup: "Bearer alice" is u-alice, anything else nobody.
  const caller: CallerResolver<ApiState> = async (ctx) => ({
    principal: ctx.get('authorization') === 'Bearer alice' ? { userId: 'u-alice', username: 'alice', role: 'user' } : null,
    ip: '127.0.0.1',
  });

  before(async () => {
    const whoami = inline('whoami', (r) => {
      const router = new Router<PluginRouteState>();
      router.get('/me', (ctx) => {
        ctx.body = { userId: ctx.state.principal?.userId ?? null };
      });
      r.httpRoutes(router);
    });
    host = await startPluginHost([{ plugin: whoami, options: {} }], { logger, services: fakeServices() });
    api = await serveApi(host, logger, caller);
  });
  after(async () => {
    await api?.close();
    await host?.close();
  });

  /** The request line of the request with this id (written before the answer is sent). */
  const requestLine = (reqId: string) => lines.find((l) => l.msg === 'request' && l.reqId === reqId);

  const cases = [
    { desc: 'a signed-in caller: its user id', auth: 'Bearer alice', reqId: 'req-plugin-log-1', userId: 'u-alice' },
    { desc: 'no caller: no user id', auth: undefined, reqId: 'req-plugin-log-2', userId: undefined },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const res = await fetch(`${api.url}/v1/plugins/whoami/me`, { headers: { 'x-request-id': c.reqId, ...(c.auth ? { authorization: c.auth } : {}) } });
      assert.equal(res.status, 200);
      await res.text();
      const line = requestLine(c.reqId);
      assert.ok(line, 'one request line for the request');
      assert.equal(line.path, '/v1/plugins/whoami/me');
      assert.equal(line.status, 200);
      assert.equal(line.userId, c.userId);
    });
  }
});
