import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, type ApiResponse } from '../helpers/api.js';
import { startServer, type ServerProcess } from '../helpers/e2e.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.js';
import { cleanupSessions, testSessions } from '../helpers/sessions.js';
import { dropSchema, TEST_DATABASE_URL } from '../helpers/store.js';
import { scratchDirs } from '../helpers/tmp.js';
import pg from 'pg';

/*
 * Issue 16, traces: `npm start` (supervisor, control and agent as separate processes) with
 * tracing on exports to a real OTLP/HTTP receiver; a login and a launch give one span tree per
 * request, the agent's spans continuing control's trace across the RPC. Off: nothing is sent.
 * A collector that refuses connections changes nothing for the user.
 */
const scratch = scratchDirs('hs-trace-');
const SERVER_SPAN = 2;
const CLIENT_SPAN = 3;

interface Running {
  server: ServerProcess;
  ca: string;
  sessions: ReturnType<typeof testSessions>;
  schema: string;
}

async function start(tracing: Record<string, unknown> | undefined): Promise<Running> {
  const schema = `t_trace_${randomBytes(4).toString('hex')}`;
  const sql = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await sql.connect();
  await sql.query(`CREATE SCHEMA "${schema}"`);
  await sql.end();
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const sessions = testSessions();
  const server = await startServer({
    dataDir: scratch(),
    publicHost: PUBLIC_HOST,
    config: { sessionDomain: 'sessions.test', databaseUrl: url.toString(), sessions, ...(tracing ? { tracing } : {}) },
  });
  return { server, ca: readFileSync(join(server.dataDir, 'certs', 'ca.crt'), 'utf8'), sessions, schema };
}

async function stop(r: Running | undefined): Promise<number | null | undefined> {
  if (!r) return undefined;
  const code = await r.server.stop();
  await cleanupSessions(r.sessions);
  await dropSchema(r.schema);
  return code;
}

const api = (r: Running, method: string, path: string, o: Parameters<typeof request>[3] = {}): Promise<ApiResponse> => request({ port: r.server.port, ca: r.ca }, method, path, o);

/** Logs in as the first admin (control may still be coming up behind the edge: 503 until then). */
async function login(r: Running): Promise<{ access_token: string; refresh_token: string }> {
  const end = Date.now() + 60_000;
  for (;;) {
    const res = await api(r, 'POST', '/v1/login', { body: { username: 'admin', password: r.server.adminPassword } }).catch(() => undefined);
    if (res?.status === 200) return res.json as { access_token: string; refresh_token: string };
    if (Date.now() > end) throw new Error(`cannot log in: ${res?.status} ${res?.text}`);
    await new Promise((res2) => setTimeout(res2, 250));
  }
}

async function launch(r: Running, token: string, headers: Record<string, string> = {}): Promise<{ session_id: string; connect: { token: string } }> {
  const res = await api(r, 'POST', '/v1/sessions', { token, body: { app: 'firefox' }, headers });
  assert.equal(res.status, 201, res.text);
  return res.json as { session_id: string; connect: { token: string } };
}

/** The log lines that mean a process died or crashed. */
const deathLines = (r: Running) => r.server.logs().filter((l) => /"msg":"(child exited|unhandled error; exiting|agent crashed[^"]*)"/.test(l));

function one(spans: ReceivedSpan[], name: string, traceId?: string): ReceivedSpan {
  const found = spans.filter((s) => s.name === name && (traceId === undefined || s.traceId === traceId));
  assert.equal(found.length, 1, `one span "${name}"${traceId ? ` in trace ${traceId}` : ''}; got ${found.length} (names: ${[...new Set(spans.map((s) => s.name))].join(', ')})`);
  return found[0]!;
}

function assertChild(child: ReceivedSpan, parent: ReceivedSpan): void {
  assert.equal(child.traceId, parent.traceId, `${child.name} is in ${parent.name}'s trace`);
  assert.equal(child.parentSpanId, parent.spanId, `${child.name}'s parent is ${parent.name}`);
}

describe('traces of a login and a launch across control and the agent', { skip: process.getuid?.() !== 0 ? 'needs root' : false, timeout: 600_000 }, () => {
  let receiver: OtlpReceiver;
  let r: Running | undefined;
  let tokens: { access_token: string; refresh_token: string };
  let launched: { session_id: string; connect: { token: string } };
  const clientTraceId = randomBytes(16).toString('hex');

  before(async () => {
    receiver = await startOtlpReceiver();
    r = await start({ otlpEndpoint: receiver.url, serviceName: 'hs-test' });
    tokens = await login(r);
    // A client's own traceparent must not become the request's parent.
    launched = await launch(r, tokens.access_token, { traceparent: `00-${clientTraceId}-${randomBytes(8).toString('hex')}-01` });
  });
  after(async () => {
    await stop(r);
    await receiver?.close();
  });

  it('exports the login as one tree: request → auth.login → password check, second-factor check, token issue', async () => {
    await receiver.until((s) => s.some((x) => x.name === 'auth.token_issue') && s.some((x) => x.name === 'POST /v1/login' && x.attributes['http.response.status_code'] === 200));
    const spans = receiver.spans;
    const http = spans.find((s) => s.name === 'POST /v1/login' && s.attributes['http.response.status_code'] === 200)!;
    assert.equal(http.kind, SERVER_SPAN);
    assert.equal(http.parentSpanId, '', 'the API request is the root');
    assert.equal(http.service, 'hs-test-control');
    assert.equal(http.attributes['http.route'], '/v1/login');
    assert.equal(http.attributes['http.request.method'], 'POST');
    const loginSpan = one(spans, 'auth.login', http.traceId);
    assertChild(loginSpan, http);
    assert.equal(loginSpan.attributes['hackstream.auth.provider'], 'auth-local');
    for (const name of ['auth.password_verify', 'auth.second_factor_check', 'auth.token_issue']) assertChild(one(spans, name, http.traceId), loginSpan);
  });

  it('exports the launch as one trace: request → quota → agent call (continued in the agent process) → ready → route', async () => {
    await receiver.until((s) => ['route.publish', 'container.wait_ready', 'agent.handle create'].every((n) => s.some((x) => x.name === n)) && s.some((x) => x.name === 'POST /v1/sessions'));
    const spans = receiver.spans;
    const http = one(spans, 'POST /v1/sessions');
    assert.equal(http.parentSpanId, '', 'a new trace: the client\'s traceparent is not trusted');
    assert.notEqual(http.traceId, clientTraceId);
    assert.ok(!spans.some((s) => s.traceId === clientTraceId), 'no span joins the client\'s trace');
    assert.equal(http.attributes['http.response.status_code'], 201);
    assert.equal(http.attributes['http.route'], '/v1/sessions');
    const t = http.traceId;
    const launchSpan = one(spans, 'session.launch', t);
    assertChild(launchSpan, http);
    assert.equal(launchSpan.attributes['hackstream.session.id'], launched.session_id);
    assertChild(one(spans, 'quota.check', t), launchSpan);
    const containerSpan = one(spans, 'session.container', t);
    assertChild(containerSpan, launchSpan);
    const rpc = one(spans, 'agent.rpc create', t);
    assert.equal(rpc.kind, CLIENT_SPAN);
    assert.equal(rpc.service, 'hs-test-control');
    assertChild(rpc, containerSpan);
    // The agent is another process: its spans continue control's trace under the RPC's span.
    const handled = one(spans, 'agent.handle create', t);
    assert.equal(handled.kind, SERVER_SPAN);
    assert.equal(handled.service, 'hs-test-agent');
    assert.notEqual(handled.pid, rpc.pid, 'control and the agent are separate processes');
    assertChild(handled, rpc);
    for (const name of ['container.create', 'container.start', 'container.wait_ready']) {
      const s = one(spans, name, t);
      assert.equal(s.service, 'hs-test-agent');
      assertChild(s, handled);
    }
    assertChild(one(spans, 'session.ready', t), launchSpan);
    assertChild(one(spans, 'route.publish', t), launchSpan);
    const failedSpans = spans.filter((s) => s.traceId === t && s.status === 2).map((s) => s.name);
    assert.deepEqual(failedSpans, [], 'nothing in the launch failed');
  });

  it('puts no secret and no query string in any span', async () => {
    // A query string with a would-be secret: the span has the route, never the query.
    const res = await api(r!, 'GET', '/v1/audit?secret=hunter2-in-the-query', { token: tokens.access_token });
    assert.ok(res.status === 200 || res.status === 400, res.text);
    await receiver.until((s) => s.some((x) => x.name === 'GET /v1/audit'));
    const exported = receiver.requests.map((q) => q.body).join('\n');
    for (const secret of [r!.server.adminPassword, tokens.access_token, tokens.refresh_token, launched.connect.token, 'hunter2-in-the-query', 'PRIVATE KEY', 'Bearer ']) {
      assert.ok(!exported.includes(secret), `an exported span holds a secret (${secret.slice(0, 12)}…)`);
    }
    for (const s of receiver.spans) {
      for (const [k, v] of Object.entries(s.attributes)) {
        assert.ok(!/token|password|secret|cookie|authorization|query/i.test(k), `${s.name} has attribute ${k}`);
        assert.ok(typeof v !== 'string' || !v.includes('?'), `${s.name}.${k} holds a query string: ${String(v)}`);
      }
    }
  });

  it('flushes the spans still queued when it stops (SIGTERM), and stops cleanly', async () => {
    const res = await api(r!, 'GET', '/v1/me', { token: tokens.access_token });
    assert.equal(res.status, 200);
    const running = r!;
    r = undefined;
    assert.equal(await stop(running), 0);
    assert.ok(receiver.spans.some((s) => s.name === 'GET /v1/me'), 'the last request\'s span reached the receiver at shutdown');
    assert.deepEqual(deathLines(running), []);
  });
});

describe('tracing with a collector that refuses connections', { skip: process.getuid?.() !== 0 ? 'needs root' : false, timeout: 600_000 }, () => {
  let r: Running | undefined;
  let refusedPort: number;
  before(async () => {
    // A port nothing listens on: every export is refused.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    refusedPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    r = await start({ otlpEndpoint: `http://127.0.0.1:${refusedPort}` });
  });
  after(() => stop(r));

  it('logs in, launches and stops as usual: no crash, no unhandled rejection, a logged export failure', async () => {
    const tokens = await login(r!);
    await launch(r!, tokens.access_token);
    const running = r!;
    r = undefined;
    assert.equal(await stop(running), 0, 'every process drained and exited 0');
    assert.deepEqual(deathLines(running), [], 'no process died or was restarted');
    const logs = running.server.logs();
    assert.ok(logs.some((l) => l.includes('"msg":"tracing on"') && l.includes('"process":"agent"')), 'the agent traced');
    assert.ok(logs.some((l) => l.includes('"component":"tracing"') && /export failed|did not shut down cleanly|did not finish/.test(l)), 'the failed export is logged');
  });
});

describe('tracing off (no tracing block)', { skip: process.getuid?.() !== 0 ? 'needs root' : false, timeout: 600_000 }, () => {
  let receiver: OtlpReceiver;
  let r: Running | undefined;
  before(async () => {
    // Where an SDK started with OTLP's defaults would send (http://localhost:4318).
    receiver = await startOtlpReceiver(4318);
    r = await start(undefined);
  });
  after(async () => {
    await stop(r);
    await receiver?.close();
  });

  it('sends nothing through a login, a launch and a shutdown, and starts no SDK', async () => {
    const tokens = await login(r!);
    await launch(r!, tokens.access_token);
    const running = r!;
    r = undefined;
    // Shutting down would flush anything queued: after the exit, nothing can still come.
    assert.equal(await stop(running), 0);
    assert.deepEqual(receiver.requests, []);
    assert.ok(!running.server.logs().some((l) => l.includes('"component":"tracing"')), 'no process started tracing');
  });
});
