import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { deleteRedisKeys } from './redis.js';
import type { AuthSettingsInput } from '../../core/auth/index.js';
import type { ConfigInput } from '../../core/config/schema.js';
import { createLogger, type Logger } from '../../lib/log.js';
import { PUBLIC_HOST, startGateway, type TestGateway } from './gateway.js';
import { dropSchema, TEST_DATABASE_URL, TEST_REDIS_URL, type DatabaseKind, type KvKind } from './store.js';

/** Argon2id cheap enough for tests that are not about its cost (production: m=19456, t=2). */
export const FAST_ARGON2 = { memoryCost: 1024, timeCost: 1, parallelism: 1 } as const;

export const ADMIN = { username: 'root-admin', password: 'Bootstrap-Admin-Pass-1' } as const;

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed body when it was JSON. */
  json: unknown;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent as is (overrides `body`). */
  raw?: string | Buffer;
  headers?: Record<string, string>;
  /** Source address on loopback (127.0.0.2…), to act as another client IP. */
  localAddress?: string;
  agent?: https.Agent;
}

/** A token pair as the API answers it (snake_case, as every /v1 key). */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: string;
  refresh_expires_at: string;
}

export interface ApiOptions {
  db?: DatabaseKind;
  kv?: KvKind;
  config?: Partial<ConfigInput>;
  /** Merged over { argon2: FAST_ARGON2 }. */
  auth?: AuthSettingsInput;
  /** Capture every log line (at debug) in `logs`. */
  captureLogs?: boolean;
  bootstrap?: { username?: string; password?: string };
  /** /ready also asks the agent, and the runtime is prepared at start (as `npm start` does). */
  sessionsReadiness?: boolean;
}

/** A running HackStream with the API, over TLS through the real gateway, on a fresh store. */
export interface TestApi {
  gw: TestGateway;
  readonly port: number;
  /** Postgres: the schema the tables live in. */
  readonly schema: string;
  /** Redis: the key prefix of this app. */
  readonly redisPrefix: string;
  readonly dataDir: string;
  /** The database URL the app uses (Postgres: with search_path set to `schema`), for other processes. */
  readonly databaseUrl: string | undefined;
  /** Log lines as text (captureLogs). */
  readonly logs: string[];
  /** What the bootstrap printed (a generated password notice). */
  readonly announced: string[];
  request(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse>;
  login(username: string, password: string, opts?: RequestOptions): Promise<TokenPair>;
  adminToken(): Promise<string>;
  /** Creates a user as the bootstrap admin; returns its id. */
  createUser(username: string, password: string, extra?: Record<string, unknown>): Promise<string>;
  /** Stops the app and starts it again on the same database, KV and data dir. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startApi(opts: ApiOptions = {}): Promise<TestApi> {
  const dbKind = opts.db ?? 'embedded';
  const kvKind = opts.kv ?? 'memory';
  const dataDir = mkdtempSync(join(tmpdir(), 'hs-api-'));
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const prefix = `hstest:${randomBytes(6).toString('hex')}:`;
  const logs: string[] = [];
  const announced: string[] = [];
  const logger: Logger | undefined = opts.captureLogs ? captureLogger(logs) : undefined;
  const config: Partial<ConfigInput> = {
    ...(dbKind === 'postgres' ? { databaseUrl: TEST_DATABASE_URL } : {}),
    ...(kvKind === 'redis' ? { redisUrl: TEST_REDIS_URL, redisPrefix: prefix } : {}),
    ...opts.config,
  };
  const start = () =>
    startGateway(config, {
      dataDir,
      ...(logger ? { logger } : {}),
      app: {
        auth: { ...opts.auth, argon2: { ...FAST_ARGON2, ...opts.auth?.argon2 } },
        bootstrap: { ...ADMIN, ...opts.bootstrap, announce: (t) => announced.push(t) },
        ...(dbKind === 'postgres' ? { databaseSchema: schema } : {}),
        ...(opts.sessionsReadiness ? { sessionsReadiness: true } : {}),
      },
    });
  let gw = await start();
  let admin: string | undefined;
  const api: TestApi = {
    get gw() {
      return gw;
    },
    get port() {
      return gw.port;
    },
    schema,
    redisPrefix: prefix,
    dataDir,
    databaseUrl: dbKind === 'postgres' ? withSearchPath(String(config.databaseUrl ?? TEST_DATABASE_URL), schema) : undefined,
    logs,
    announced,
    request: (method, path, o = {}) => request(gw, method, path, o),
    async login(username, password, o = {}) {
      const r = await request(gw, 'POST', '/v1/login', { ...o, body: { username, password } });
      if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
      return r.json as TokenPair;
    },
    async adminToken() {
      admin ??= (await api.login(opts.bootstrap?.username ?? ADMIN.username, opts.bootstrap?.password ?? ADMIN.password, { localAddress: '127.0.0.1' })).access_token;
      return admin;
    },
    async createUser(username, password, extra = {}) {
      const r = await request(gw, 'POST', '/v1/users', { token: await api.adminToken(), body: { username, password, ...extra } });
      if (r.status !== 201) throw new Error(`create ${username}: ${r.status} ${r.text}`);
      return (r.json as { id: string }).id;
    },
    async restart() {
      await gw.app.close();
      admin = undefined;
      gw = await start();
    },
    async close() {
      await gw.app.close();
      rmSync(dataDir, { recursive: true, force: true });
      if (dbKind === 'postgres') await dropSchema(schema);
      if (kvKind === 'redis') await deleteRedisKeys(prefix);
    },
  };
  return api;
}

/** One HTTPS request to a HackStream's API host (anything with its port and CA). */
export function request(gw: Pick<TestGateway, 'port' | 'ca'>, method: string, path: string, o: RequestOptions = {}): Promise<ApiResponse> {
  const payload = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  const headers: Record<string, string> = {
    host: PUBLIC_HOST,
    ...(payload !== undefined && o.raw === undefined ? { 'content-type': 'application/json' } : {}),
    ...(payload !== undefined ? { 'content-length': String(Buffer.byteLength(payload)) } : {}),
    ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
    ...o.headers,
  };
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: gw.port,
        path,
        method,
        ca: gw.ca,
        servername: PUBLIC_HOST,
        headers,
        agent: o.agent ?? false,
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          if (String(res.headers['content-type'] ?? '').startsWith('application/json')) json = JSON.parse(text) as unknown;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** `{error: {code}}` of a response, or undefined. */
export function errorCode(r: ApiResponse): string | undefined {
  const e = (r.json as { error?: { code?: unknown } } | undefined)?.error;
  return typeof e?.code === 'string' ? e.code : undefined;
}

function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

function captureLogger(lines: string[]): Logger {
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(line);
      done();
    },
  });
  return createLogger({ level: 'trace', destination });
}

