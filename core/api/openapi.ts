/*
 * The OpenAPI 3.1 document of the API, generated from the route table (core/api/route.ts):
 * each route's access, body and query schemas and declared responses, converted with zod's
 * own z.toJSONSchema (JSON Schema 2020-12, which OpenAPI 3.1 uses). Nothing is written by
 * hand, so the document cannot drift from the routes; a route without declared responses
 * makes the document fail to build (the contract test runs it). Served at GET /v1/openapi.json.
 */
import { z } from 'zod';
import { route, type AnyRoute, type Responses } from './route.js';
import { errorSchema, nameOf } from './schemas.js';

export const OPENAPI_PATH = '/v1/openapi.json';

type Json = Record<string, unknown>;

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  jsonSchemaDialect: string;
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
}

/** Routes in the table without declared responses. */
export class RouteSchemaMissingError extends Error {
  constructor(readonly routes: string[]) {
    super(`routes without a response schema (declare \`responses\` in route()): ${routes.join(', ')}`);
    this.name = 'RouteSchemaMissingError';
  }
}

/** Builds the document; throws RouteSchemaMissingError when a route declares no responses. */
export function openApiDocument(routes: readonly AnyRoute[]): OpenApiDocument {
  const missing = routes.filter((r) => !r.doc.responses || Object.keys(r.doc.responses).length === 0).map((r) => `${r.method} ${r.path}`);
  if (missing.length > 0) throw new RouteSchemaMissingError(missing);
  const components: Record<string, Json> = {};
  const paths: OpenApiDocument['paths'] = {};
  for (const r of routes) {
    const path = r.path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
    (paths[path] ??= {})[r.method.toLowerCase()] = operation(r, components);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'HackStream API',
      version: 'v1',
      description: 'Generated from the route table (core/api/openapi.ts). Errors are {"error":{"code","message","details?"}} with a stable code (docs/api.md).',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'an access token from POST /v1/login' } },
    },
  };
}

function operation(r: AnyRoute, components: Record<string, Json>): Json {
  const params = [...r.path.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const query = r.doc.query ? queryParameters(schemaOf(r.doc.query, 'input', components)) : [];
  return {
    operationId: operationId(r),
    ...(r.doc.summary ? { summary: r.doc.summary } : {}),
    tags: [tagOf(r.path)],
    security: r.access === 'public' ? [] : [{ bearerAuth: [] }],
    ...(r.access === 'admin' ? { description: 'Needs the admin role.' } : {}),
    ...(params.length + query.length > 0 ? { parameters: [...params, ...query] } : {}),
    ...(r.doc.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(r.doc.body, 'input', components) } } } } : {}),
    responses: responses(r.doc.responses as Responses, components),
  };
}

function responses(declared: Responses, components: Record<string, Json>): Json {
  const out: Json = {};
  for (const [status, body] of Object.entries(declared)) {
    if (body === undefined) continue;
    const description = DESCRIPTIONS[status] ?? 'success';
    if (body === null) out[status] = { description };
    else if (body === 'text') out[status] = { description, content: { 'text/plain': { schema: { type: 'string' } } } };
    else out[status] = { description, content: { 'application/json': { schema: schemaOf(body, 'output', components) } } };
  }
  out.default = { description: 'an error', content: { 'application/json': { schema: schemaOf(errorSchema, 'output', components) } } };
  return out;
}

const DESCRIPTIONS: Record<string, string> = { '200': 'success', '201': 'created', '204': 'done, no body', '302': 'redirect (Location)' };

/** A named schema once in the components (and a $ref to it), any other inline. */
function schemaOf(schema: z.ZodType, io: 'input' | 'output', components: Record<string, Json>): Json {
  const name = nameOf(schema);
  if (!name) return toJsonSchema(schema, io);
  components[name] ??= toJsonSchema(schema, 'output');
  return { $ref: `#/components/schemas/${name}` };
}

function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as Json;
  return rest;
}

/** An object schema's properties as query parameters; anything else (a free-form map) as one form-exploded parameter. */
function queryParameters(schema: Json): Json[] {
  const props = schema.properties as Record<string, Json> | undefined;
  if (!props) return [{ name: 'params', in: 'query', style: 'form', explode: true, schema }];
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([name, s]) => ({ name, in: 'query', required: required.has(name), schema: s }));
}

/** "POST /v1/sessions/:id/connect" → "postSessionsByIdConnect". */
export function operationId(r: Pick<AnyRoute, 'method' | 'path'>): string {
  const words = r.path
    .split('/')
    .filter((s) => s !== '' && s !== 'v1')
    .map((s) => (s.startsWith(':') ? `by-${s.slice(1)}` : s))
    .flatMap((s) => s.split(/[^A-Za-z0-9]+/))
    .filter(Boolean);
  return r.method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

function tagOf(path: string): string {
  const first = path.split('/').filter((s) => s !== '' && s !== 'v1')[0] ?? 'system';
  return ['health', 'ready', 'metrics', 'openapi.json'].includes(first) ? 'system' : first;
}

/** GET /v1/openapi.json: the document of `routes` (built at the first request, then kept). */
export function openApiRoute(routes: readonly AnyRoute[]): AnyRoute {
  let doc: OpenApiDocument | undefined;
  return route({
    method: 'GET',
    path: OPENAPI_PATH,
    access: 'public',
    summary: 'This document (OpenAPI 3.1)',
    responses: { 200: z.record(z.string(), z.unknown()).describe('an OpenAPI 3.1 document') },
    handle(ctx) {
      doc ??= openApiDocument(routes);
      ctx.body = doc;
    },
  });
}
