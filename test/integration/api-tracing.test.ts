import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startApi, type TestApi } from '../helpers/api.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.js';

/*
 * Traces from HackStream in one process (server/app.ts: agent, control and edge together, as
 * the suite and benchmarks run it), no containers: a refused and an accepted login, a request
 * that matches no route, and a restart (the SDK shuts down, flushing, and starts again).
 */
const ERROR = 2;

describe('API traces in one process (createApp)', () => {
  let receiver: OtlpReceiver;
  let api: TestApi;
  before(async () => {
    receiver = await startOtlpReceiver();
    api = await startApi({ db: 'postgres', config: { tracing: { otlpEndpoint: receiver.url, serviceName: 'hs-unit' } } });
  });
  after(async () => {
    await api?.close();
    await receiver?.close();
  });

  const loginSpans = (s: ReceivedSpan[], status: number) => s.filter((x) => x.name === 'POST /v1/login' && x.attributes['http.response.status_code'] === status);

  it('a refused login: the server span carries the answer\'s code, auth.login failed with it, no token issued, no password anywhere', async () => {
    const wrong = 'Wrong-Password-For-Tracing-9';
    const r = await api.request('POST', '/v1/login', { body: { username: ADMIN.username, password: wrong } });
    assert.equal(r.status, 401);
    await receiver.until((s) => loginSpans(s, 401).length === 1 && s.some((x) => x.name === 'auth.login' && x.traceId === loginSpans(s, 401)[0]!.traceId));
    const http = loginSpans(receiver.spans, 401)[0]!;
    assert.equal(http.service, 'hs-unit-app');
    assert.equal(http.attributes['hackstream.error_code'], 'AUTH_INVALID_CREDENTIALS');
    assert.notEqual(http.status, ERROR, 'a 4xx answer is not a server error');
    const inTrace = receiver.spans.filter((x) => x.traceId === http.traceId);
    const loginSpan = inTrace.find((x) => x.name === 'auth.login')!;
    assert.equal(loginSpan.parentSpanId, http.spanId);
    assert.equal(loginSpan.status, ERROR);
    assert.equal(loginSpan.attributes['error.type'], 'AUTH_INVALID_CREDENTIALS');
    assert.equal(loginSpan.attributes['hackstream.auth.result'], 'deny');
    assert.ok(inTrace.some((x) => x.name === 'auth.password_verify' && x.parentSpanId === loginSpan.spanId));
    assert.ok(!inTrace.some((x) => x.name === 'auth.token_issue'), 'no token for a refused login');
    const exported = receiver.requests.map((q) => q.body).join('\n');
    assert.ok(!exported.includes(wrong) && !exported.includes(ADMIN.password), 'no password in any span');
  });

  it('an accepted login issues its token under auth.login; an unknown path is named by its method only', async () => {
    const pair = await api.login(ADMIN.username, ADMIN.password);
    const r = await api.request('GET', '/v1/no-such-route/secret-value');
    assert.equal(r.status, 404);
    await receiver.until((s) => loginSpans(s, 200).length === 1 && s.some((x) => x.name === 'auth.token_issue') && s.some((x) => x.name === 'GET'));
    const http = loginSpans(receiver.spans, 200)[0]!;
    const loginSpan = receiver.spans.find((x) => x.name === 'auth.login' && x.traceId === http.traceId)!;
    const issue = receiver.spans.find((x) => x.name === 'auth.token_issue' && x.traceId === http.traceId)!;
    assert.equal(issue.parentSpanId, loginSpan.spanId);
    assert.equal(typeof issue.attributes['hackstream.user.id'], 'string');
    const unknown = receiver.spans.find((x) => x.name === 'GET')!;
    assert.equal(unknown.attributes['http.route'], undefined);
    assert.equal(unknown.attributes['http.response.status_code'], 404);
    const exported = receiver.requests.map((q) => q.body).join('\n');
    assert.ok(!exported.includes(pair.access_token) && !exported.includes(pair.refresh_token), 'no token in any span');
    assert.ok(!exported.includes('secret-value'), "no path value in any span");
  });

  it('flushes at close and traces again after a restart (the SDK stops and starts cleanly)', async () => {
    const token = (await api.login(ADMIN.username, ADMIN.password)).access_token;
    assert.equal((await api.request('GET', '/v1/me', { token })).status, 200);
    await api.restart();
    assert.ok(receiver.spans.some((x) => x.name === 'GET /v1/me'), 'the queued span was sent when the app closed');
    assert.equal((await api.request('GET', '/v1/me', { token: await api.adminToken() })).status, 200);
    await receiver.until((s) => s.filter((x) => x.name === 'GET /v1/me').length === 2);
  });
});
