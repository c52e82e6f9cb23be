import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRequest } from '../../agent/server.js';
import { ConfigError, parseConfig } from '../../core/config/load.js';
import { currentTraceCarrier, traced } from '../../lib/tracing.js';
import { tracesUrl } from '../../lib/tracing-sdk.js';

/* The `tracing` config block, the agent RPC's `trace` field, and what "off" puts on the wire. */

const TRACEPARENT = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;

function configProblems(tracing: unknown): string {
  try {
    parseConfig({ tracing });
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  assert.fail('the config was accepted');
}

describe('the tracing config block', () => {
  it('is absent by default, and fills its defaults when present', () => {
    assert.equal(parseConfig({}).tracing, undefined);
    assert.deepEqual(parseConfig({ tracing: { otlpEndpoint: 'http://127.0.0.1:4318' } }).tracing, { otlpEndpoint: 'http://127.0.0.1:4318', serviceName: 'hackstream', sampleRatio: 1 });
  });

  it('refuses a missing or non-HTTP endpoint, a ratio outside 0–1, a bad service name or header name, unknown keys', () => {
    assert.match(configProblems({}), /tracing\.otlpEndpoint/);
    assert.match(configProblems({ otlpEndpoint: 'ftp://collector:4318' }), /tracing\.otlpEndpoint.*http/);
    assert.match(configProblems({ otlpEndpoint: 'http://c:4318', sampleRatio: 1.5 }), /tracing\.sampleRatio/);
    assert.match(configProblems({ otlpEndpoint: 'http://c:4318', serviceName: 'has space' }), /tracing\.serviceName/);
    assert.match(configProblems({ otlpEndpoint: 'http://c:4318', headers: { 'bad header': 'x' } }), /tracing\.headers/);
    assert.match(configProblems({ otlpEndpoint: 'http://c:4318', exporter: 'zipkin' }), /tracing.*exporter/);
  });

  it('sends to <endpoint>/v1/traces, keeping a path prefix', () => {
    assert.equal(tracesUrl('http://127.0.0.1:4318'), 'http://127.0.0.1:4318/v1/traces');
    assert.equal(tracesUrl('https://otel.example.org/otlp/'), 'https://otel.example.org/otlp/v1/traces');
  });
});

describe("the agent RPC's trace field", () => {
  const line = (extra: Record<string, unknown>) => JSON.stringify({ v: 1, id: 3, method: 'list', params: {}, ...extra });

  it('hands a valid traceparent (and tracestate) to the agent with the request', () => {
    const r = parseRequest(line({ trace: { traceparent: TRACEPARENT, tracestate: 'vendor=1' } }));
    assert.ok(!('error' in r), 'accepted');
    assert.deepEqual(r.trace, { traceparent: TRACEPARENT, tracestate: 'vendor=1' });
    const bare = parseRequest(line({}));
    assert.ok(!('error' in bare) && bare.trace === undefined, 'a request without it has none');
  });

  it('refuses a malformed one like any other bad envelope field', () => {
    for (const trace of [{ traceparent: 'not-a-traceparent' }, { traceparent: TRACEPARENT, extra: 1 }, { traceparent: TRACEPARENT, tracestate: 'x'.repeat(513) }, 'string']) {
      const r = parseRequest(line({ trace }));
      assert.ok('error' in r, JSON.stringify(trace));
      assert.equal(r.error.code, 'VALIDATION_FAILED');
      assert.equal(r.id, 3);
    }
  });

  it('is not sent when tracing is off: no SDK, no carrier, even inside a span', async () => {
    assert.equal(currentTraceCarrier(), undefined);
    assert.equal(await traced('x', () => Promise.resolve(currentTraceCarrier())), undefined);
  });
});
