import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Router from '@koa/router';
import { BODY_LIMIT_BYTES } from '../../core/api/body.js';
import { jsonBody, type PluginRouteState } from '../../core/plugin/contract.js';
import { startPluginHost, type PluginHost } from '../../core/plugin/host.js';
import { capturingLogger, fakeServices, inline, serveApi } from '../fixtures/plugins/harness.js';

/*
 * Plugin routes are offered core's body parser (the contract's `jsonBody`): `ctx.request.body`
 * holds the parsed JSON, and a body core would refuse on its own routes is refused the same
 * way before the plugin runs. A route without it still reads the raw request itself.
 */

describe('plugin routes: the request body through core’s parser', () => {
  let host: PluginHost;
  let api: { url: string; close(): Promise<void> };
  let reached = 0;

  before(async () => {
    const echo = inline('echo', (r) => {
      const router = new Router<PluginRouteState>();
      router.post('/echo', jsonBody, (ctx) => {
        reached++;
        ctx.body = { got: ctx.request.body ?? null };
      });
      // Without the parser the route reads the raw request itself (plugins of contract 2 do).
      router.post('/raw', async (ctx) => {
        let text = '';
        for await (const chunk of ctx.req) text += String(chunk);
        ctx.body = { raw: text, parsed: ctx.request.body ?? null };
      });
      r.httpRoutes(router);
    });
    const { logger } = capturingLogger();
    host = await startPluginHost([{ plugin: echo, options: {} }], { logger, services: fakeServices() });
    api = await serveApi(host, logger);
  });
  after(async () => {
    await api?.close();
    await host?.close();
  });

  const post = async (body: string | Uint8Array | undefined, type = 'application/json') => {
    const res = await fetch(`${api.url}/v1/plugins/echo/echo`, { method: 'POST', ...(body === undefined ? {} : { body, headers: { 'content-type': type } }) });
    return { status: res.status, json: (await res.json()) as { got?: unknown; error?: { code: string } } };
  };

  it('hands the route the parsed JSON, or undefined without a body', async () => {
    assert.deepEqual(await post('{"code":"123456","n":[1,2]}'), { status: 200, json: { got: { code: '123456', n: [1, 2] } } });
    assert.deepEqual(await post('{"a":1}', 'application/merge-patch+json'), { status: 200, json: { got: { a: 1 } } });
    assert.deepEqual(await post(undefined), { status: 200, json: { got: null } });
  });

  it('leaves the request unread on a route without it', async () => {
    const res = await fetch(`${api.url}/v1/plugins/echo/raw`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { raw: '{"a":1}', parsed: null });
  });

  const refusals = [
    { desc: 'malformed JSON', body: '{"code":', type: 'application/json', status: 400, code: 'BAD_REQUEST' },
    { desc: 'invalid UTF-8', body: Uint8Array.from([0x22, 0xff, 0x22]), type: 'application/json', status: 400, code: 'BAD_REQUEST' },
    { desc: 'not JSON', body: 'code=123456', type: 'text/plain', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { desc: "over core's limit", body: JSON.stringify({ x: 'y'.repeat(BODY_LIMIT_BYTES) }), type: 'application/json', status: 413, code: 'PAYLOAD_TOO_LARGE' },
  ];
  for (const c of refusals) {
    it(`refuses ${c.desc} with ${c.status} ${c.code} before the route runs`, async () => {
      const before = reached;
      const r = await post(c.body, c.type);
      assert.equal(r.status, c.status);
      assert.equal(r.json.error?.code, c.code);
      assert.equal(reached, before, 'the route did not run');
    });
  }
});
