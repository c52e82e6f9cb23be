import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { z } from 'zod';
import { apiRoutes, type ApiDeps } from '../../core/api/app.js';
import { OPENAPI_PATH, openApiDocument, RouteSchemaMissingError, type OpenApiDocument } from '../../core/api/openapi.js';
import { route, type AnyRoute } from '../../core/api/route.js';
import { silentLogger } from '../../lib/log.js';
import { startApi, type TestApi } from '../helpers/api.js';

/*
 * The OpenAPI 3.1 document is generated from the route table: every route appears with its
 * request and response schemas, a route without response schemas makes it fail, the document
 * passes the OpenAPI 3.1 schema (@seriousme/openapi-schema-validator), and the server serves
 * exactly it at /v1/openapi.json, with real answers matching the declared schemas.
 */

/** The route table as the app builds it; building routes calls none of their dependencies. */
function table(): AnyRoute[] {
  const unused = {} as never;
  const deps: ApiDeps = { logger: silentLogger(), control: unused, dataSource: unused, probes: [], sessions: unused, profiles: unused };
  return apiRoutes(deps);
}

const openApiPath = (p: string) => p.replace(/:([A-Za-z_]\w*)/g, '{$1}');

async function validate(doc: unknown): Promise<{ valid: boolean; errors?: unknown }> {
  return new Validator().validate(structuredClone(doc) as Record<string, unknown>);
}

/** Every "$ref" value anywhere in `value`. */
function refs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) refs(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

/** The one naming convention of /v1 (issue 16): snake_case, as the spec's sketch and RFC 6749/8628. */
const SNAKE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;

/** Every property name a JSON schema (anywhere in `value`) declares, with where it is. */
function propertyNames(value: unknown, at: string, out: Array<[string, string]> = []): Array<[string, string]> {
  if (Array.isArray(value)) value.forEach((v, i) => propertyNames(v, `${at}[${i}]`, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'properties' && v && typeof v === 'object' && !Array.isArray(v)) for (const name of Object.keys(v)) out.push([name, at]);
      propertyNames(v, `${at}.${k}`, out);
    }
  }
  return out;
}

/** Every key of a JSON answer that is not snake_case; free-form recorded data (audit `details`) is not the API's own. */
function nonSnakeKeys(value: unknown, at = '$', out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v, i) => nonSnakeKeys(v, `${at}[${i}]`, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (!SNAKE.test(k)) out.push(`${at}.${k}`);
      if (k !== 'details') nonSnakeKeys(v, `${at}.${k}`, out);
    }
  }
  return out;
}

describe('the OpenAPI document of the route table', () => {
  const routes = table();
  const doc = openApiDocument(routes);

  it('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(doc.openapi, '3.1.0');
    const r = await validate(doc);
    assert.equal(r.valid, true, JSON.stringify(r.errors));
  });

  it('has every registered route, with its request schemas and a schema for each declared answer', () => {
    const keys = routes.map((r) => `${r.method} ${r.path}`);
    for (const k of ['GET /health', 'GET /ready', 'POST /v1/login', 'POST /v1/sessions', 'POST /v1/sessions/:id/connect', 'PATCH /v1/users/:id', `GET ${OPENAPI_PATH}`]) assert.ok(keys.includes(k), k);
    for (const r of routes) {
      const op = doc.paths[openApiPath(r.path)]?.[r.method.toLowerCase()] as Record<string, unknown> | undefined;
      assert.ok(op, `${r.method} ${r.path} is in the document`);
      const responses = op.responses as Record<string, { content?: Record<string, { schema?: unknown }> }>;
      const success = Object.keys(responses).filter((s) => /^[23]\d\d$/.test(s));
      assert.deepEqual(success.sort(), Object.keys(r.doc.responses ?? {}).sort(), `${r.method} ${r.path}: its declared answers`);
      for (const s of success) {
        const declared = r.doc.responses?.[Number(s) as 200];
        if (declared === null) assert.equal(responses[s]?.content, undefined, `${r.path} ${s}: no body`);
        else assert.ok(Object.values(responses[s]?.content ?? {})[0]?.schema, `${r.method} ${r.path} ${s}: a schema`);
      }
      assert.ok(responses.default, `${r.path}: the error envelope`);
      const body = op.requestBody as { content: Record<string, { schema: unknown }> } | undefined;
      assert.equal(body !== undefined, r.doc.body !== undefined, `${r.method} ${r.path}: a request body exactly when it takes one`);
      if (body) assert.ok(body.content['application/json']?.schema);
      const params = (op.parameters ?? []) as Array<{ in: string; name: string }>;
      for (const name of [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1])) assert.ok(params.some((p) => p.in === 'path' && p.name === name), `${r.path}: path parameter ${name}`);
      assert.equal(params.some((p) => p.in === 'query'), r.doc.query !== undefined, `${r.method} ${r.path}: query parameters exactly when it takes them`);
      assert.deepEqual(op.security, r.access === 'public' ? [] : [{ bearerAuth: [] }], `${r.method} ${r.path}: its access`);
    }
    const ops = Object.values(doc.paths).flatMap((p) => Object.values(p)).length;
    assert.equal(ops, routes.length, 'nothing but the routes');
  });

  it('names every property of every answer, request body and query parameter in snake_case', () => {
    const names = propertyNames({ paths: doc.paths, components: doc.components.schemas }, '#');
    assert.ok(names.some(([n]) => n === 'access_token') && names.some(([n]) => n === 'next_cursor'), 'the walk sees the schemas');
    const camel = names.filter(([n]) => !SNAKE.test(n)).map(([n, at]) => `${n} (${at})`);
    assert.deepEqual(camel, [], 'not snake_case');
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const p of (op.parameters ?? []) as Array<{ in: string; name: string }>) assert.match(p.name, SNAKE, `${method} ${path}: ${p.in} parameter ${p.name}`);
      }
    }
  });

  it('has unique operationIds and components every reference resolves into', () => {
    const ids = Object.values(doc.paths).flatMap((p) => Object.values(p).map((op) => op.operationId as string));
    assert.equal(new Set(ids).size, ids.length, `unique: ${ids.join(', ')}`);
    for (const id of ids) assert.match(id, /^[a-z][A-Za-z0-9]*$/);
    assert.ok(ids.includes('postSessionsByIdConnect'));
    const all = refs(doc);
    assert.ok(all.length > 0);
    for (const ref of all) {
      const name = /^#\/components\/schemas\/(.+)$/.exec(ref)?.[1];
      assert.ok(name && doc.components.schemas[name], `${ref} resolves`);
    }
    assert.ok(doc.components.schemas.Error, 'the error envelope is a component');
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', description: 'an access token from POST /v1/login' });
  });

  it('refuses to build when a route has no response schema, naming it', () => {
    const bare = route({ method: 'GET', path: '/v1/undocumented', access: 'user', handle: () => {} });
    assert.throws(
      () => openApiDocument([...routes, bare]),
      (err: unknown) => err instanceof RouteSchemaMissingError && err.routes.length === 1 && err.routes[0] === 'GET /v1/undocumented',
    );
    const empty = route({ method: 'POST', path: '/v1/empty', access: 'public', responses: {}, handle: () => {} });
    assert.throws(() => openApiDocument([empty]), RouteSchemaMissingError);
  });
});

describe(`GET ${OPENAPI_PATH} on a running server`, () => {
  let api: TestApi;
  let served: OpenApiDocument;
  before(async () => {
    api = await startApi();
  });
  after(async () => {
    await api?.close();
  });

  it('is public and serves the generated document', async () => {
    const r = await api.request('GET', OPENAPI_PATH);
    assert.equal(r.status, 200, r.text);
    served = r.json as OpenApiDocument;
    assert.deepEqual(served, JSON.parse(JSON.stringify(openApiDocument(apiRoutes({ logger: silentLogger(), control: api.gw.app.control, dataSource: api.gw.app.db.dataSource, probes: [], sessions: api.gw.app.sessions, profiles: {} as never })))));
    assert.equal((await validate(served)).valid, true);
  });

  it('matches what the routes answer (real answers parse with the declared schemas)', async () => {
    const admin = await api.adminToken();
    const byKey = new Map(table().map((r) => [`${r.method} ${r.path}`, r]));
    const check = async (method: string, path: string, status: number, opts: { token?: string; body?: unknown } = {}, key = `${method} ${path}`) => {
      const res = await api.request(method, path, opts);
      assert.equal(res.status, status, `${key}: ${res.text.slice(0, 300)}`);
      const schema = byKey.get(key)?.doc.responses?.[status as 200];
      assert.ok(schema && schema !== 'text', `${key} declares ${status}`);
      const parsed = (schema as z.ZodType).safeParse(res.json);
      assert.ok(parsed.success, `${key}: ${parsed.success ? '' : z.prettifyError(parsed.error)}`);
      if (path !== OPENAPI_PATH) assert.deepEqual(nonSnakeKeys(res.json), [], `${key}: every key is snake_case`);
    };
    await check('POST', '/v1/login', 200, { body: { username: 'root-admin', password: 'Bootstrap-Admin-Pass-1' } });
    await check('GET', '/health', 200);
    await check('GET', '/ready', 200);
    await check('GET', '/v1/me', 200, { token: admin });
    await check('GET', '/v1/quotas', 200, { token: admin });
    await check('POST', '/v1/users', 201, { token: admin, body: { username: 'openapi-user', password: 'Openapi-User-Pass-1' } });
    await check('GET', '/v1/users', 200, { token: admin });
    await check('GET', '/v1/audit', 200, { token: admin });
    await check('GET', '/v1/auth/flows', 200);
    await check('GET', '/v1/sessions', 200, { token: admin });
    await check('GET', OPENAPI_PATH, 200);
  });
});
