import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { configSchema } from '../../core/config/schema.js';
import { registry, timeAgentCall } from '../../core/metrics/registry.js';
import { scrapeCredentialCheck } from '../../core/metrics/scrape-credential.js';
import { createAuditFanout } from '../../core/plugin/audit-fanout.js';
import type { AuditEvent, AuditSink, SessionEvent } from '../../core/plugin/contract.js';
import { createSessionEvents } from '../../core/plugin/session-events.js';
import { RuntimeCallError } from '../../core/sessions/runtime.js';
import { silentLogger } from '../../lib/log.js';
import { startFakeSessions, type FakeSessions } from '../helpers/fake-runtime.js';

/*
 * The counters move where things happen: launches (cold, pool, failed) through the sessions
 * core with a FakeRuntime on the real store, connect tokens, attaches, plugin errors, audit
 * sink drops, agent calls; and the scrape credential check and its config.
 */

/** The current value of one series (`name` may end in _count/_sum of a histogram), summed over matching labels. */
async function value(series: string, labels: Record<string, string> = {}): Promise<number> {
  const base = registry.getSingleMetric(series) ? series : series.replace(/_(count|sum|bucket)$/, '');
  const metric = registry.getSingleMetric(base);
  assert.ok(metric, `no metric ${base}`);
  const { values } = await metric.get();
  return values
    .filter((v) => ((v as { metricName?: string }).metricName ?? base) === series && Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((sum, v) => sum + v.value, 0);
}

/** How much `series` moved while `work` ran. */
async function delta(series: string, labels: Record<string, string>, work: () => Promise<unknown>): Promise<number> {
  const before = await value(series, labels);
  await work();
  return (await value(series, labels)) - before;
}

const LAUNCH = { app: 'firefox' as const, profile: 'ephemeral' as const, quality: 'low' as const };

describe('metrics: sessions counters (FakeRuntime, real store)', () => {
  let s: FakeSessions | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it('a cold launch: one success, one cold latency sample for its app, one connect token', async () => {
    s = await startFakeSessions();
    const before = {
      ok: await value('hackstream_session_launches_total', { result: 'success' }),
      cold: await value('hackstream_session_launch_duration_seconds_count', { app: 'firefox', path: 'cold' }),
      pool: await value('hackstream_session_launch_duration_seconds_count', { path: 'pool' }),
      tokens: await value('hackstream_connect_tokens_issued_total'),
    };
    await s.manager.create(s.user, LAUNCH, { sourceIp: '192.0.2.1' });
    assert.equal(await value('hackstream_session_launches_total', { result: 'success' }), before.ok + 1);
    assert.equal(await value('hackstream_session_launch_duration_seconds_count', { app: 'firefox', path: 'cold' }), before.cold + 1);
    assert.equal(await value('hackstream_session_launch_duration_seconds_count', { path: 'pool' }), before.pool, 'not a pool launch');
    assert.ok((await value('hackstream_session_launch_duration_seconds_sum', { path: 'cold' })) > 0);
    assert.equal(await value('hackstream_connect_tokens_issued_total'), before.tokens + 1);
  });

  it('a launch from the pool is observed with path="pool"', async () => {
    s = await startFakeSessions({ pool: { size: 1, memoryMb: 256, cpus: 1 } });
    await s.until('the pool filled', () => (s!.manager.poolSize() === 1 ? true : undefined));
    const moved = await delta('hackstream_session_launch_duration_seconds_count', { app: 'firefox', path: 'pool' }, () => s!.manager.create(s!.user, LAUNCH));
    assert.equal(moved, 1);
  });

  for (const c of [
    { desc: 'a container that does not start', err: () => new Error('exited 1'), reason: 'start_failed' },
    { desc: "the runtime's own limit", err: () => new RuntimeCallError('limit', 'too many'), reason: 'capacity' },
  ]) {
    it(`a failed launch (${c.desc}): failure counted with reason ${c.reason}; no latency sample`, async () => {
      s = await startFakeSessions();
      s.runtime.failNextCreate = c.err();
      const samples = await value('hackstream_session_launch_duration_seconds_count');
      const failures = await value('hackstream_session_launches_total', { result: 'failure' });
      const reasons = await value('hackstream_session_launch_failures_total', { reason: c.reason });
      await assert.rejects(s.manager.create(s.user, LAUNCH));
      assert.equal(await value('hackstream_session_launches_total', { result: 'failure' }), failures + 1);
      assert.equal(await value('hackstream_session_launch_failures_total', { reason: c.reason }), reasons + 1);
      assert.equal(await value('hackstream_session_launch_duration_seconds_count'), samples);
    });
  }

  it('a client that attaches (a tunnel open, xpra reports it logged in) counts one attach and its token once', async () => {
    s = await startFakeSessions();
    const before = await value('hackstream_session_attaches_total');
    const redeemed = await value('hackstream_connect_tokens_redeemed_total');
    const { session, connect } = await s.manager.create(s.user, LAUNCH);
    const container = s.runtime.bySession(session.session_id)!;
    container.activity = { clients: 1, idleSeconds: 0, tokensSpent: 1 };
    s.tunnels.set(connect.sni, 1);
    await s.event((e) => e.sessionId === session.session_id && e.type === 'connected');
    assert.equal(await value('hackstream_session_attaches_total'), before + 1);
    assert.equal(await value('hackstream_connect_tokens_redeemed_total'), redeemed + 1);

    // The client leaves; a second one attaches with a new token: one more, not the running total again.
    container.activity = { clients: 0, idleSeconds: null, tokensSpent: 1 };
    s.tunnels.set(connect.sni, 0);
    await s.event((e) => e.sessionId === session.session_id && e.type === 'idle');
    container.activity = { clients: 1, idleSeconds: 0, tokensSpent: 2 };
    s.tunnels.set(connect.sni, 1);
    await s.until('connected a second time', () => (s!.events.filter((e) => e.sessionId === session.session_id && e.type === 'connected').length === 2 ? true : undefined));
    assert.equal(await value('hackstream_connect_tokens_redeemed_total'), redeemed + 2);
  });
});

describe('metrics: plugin errors, audit sink drops, agent calls', () => {
  const event: SessionEvent = { type: 'ready', sessionId: 'sid', userId: 'uid', at: new Date().toISOString() };

  it('a throwing or rejecting session listener counts as a plugin error (session_events)', async () => {
    const labels = { plugin: 'metrics-listener', extension: 'session_events' };
    const before = await value('hackstream_plugin_errors_total', labels);
    let rejected!: () => void;
    const settled = new Promise<void>((r) => (rejected = r));
    const host = createSessionEvents(
      [
        { plugin: 'metrics-listener', value: () => { throw new Error('sync'); } },
        { plugin: 'metrics-listener', value: () => Promise.reject(new Error('async')).finally(() => setImmediate(rejected)) },
      ],
      silentLogger(),
    );
    host.emit(event);
    await settled;
    assert.equal(await value('hackstream_plugin_errors_total', labels), before + 2);
  });

  it('an audit sink whose queue is full counts drops; a failing write counts a plugin error (audit_sink)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const writes: string[] = [];
    const sink: AuditSink = {
      async write(e) {
        writes.push(e.id);
        await gate;
        throw new Error('sink down');
      },
    };
    const dropped = await value('hackstream_audit_sink_dropped_total', { plugin: 'metrics-sink' });
    const errors = await value('hackstream_plugin_errors_total', { plugin: 'metrics-sink', extension: 'audit_sink' });
    const fanout = createAuditFanout([{ plugin: 'metrics-sink', value: sink }], silentLogger(), { queueMax: 2, writeTimeoutMs: 60_000 });
    const audit = (id: string) => ({ id, at: new Date().toISOString(), actor: 'a', action: 'user_updated', target: null, sourceIp: null, result: 'success', details: {}, hash: 'h' }) as unknown as AuditEvent;
    // One in the sink's hands, two queued, the fourth and fifth dropped.
    for (const id of ['1', '2', '3', '4', '5']) fanout.emit(audit(id));
    assert.equal(await value('hackstream_audit_sink_dropped_total', { plugin: 'metrics-sink' }), dropped + 2);
    release();
    await fanout.drain(10_000);
    assert.deepEqual(writes, ['1', '2', '3']);
    assert.equal(await value('hackstream_plugin_errors_total', { plugin: 'metrics-sink', extension: 'audit_sink' }), errors + 3);
  });

  it('agent calls are timed by method and outcome, and settle as the call does', async () => {
    const ok = await delta('hackstream_agent_rpc_duration_seconds_count', { method: 'm-test', outcome: 'ok' }, async () => {
      assert.equal(await timeAgentCall('m-test', Promise.resolve(42)), 42);
    });
    const failed = await delta('hackstream_agent_rpc_duration_seconds_count', { method: 'm-test', outcome: 'error' }, async () => {
      await assert.rejects(timeAgentCall('m-test', Promise.reject(new Error('boom'))), /boom/);
    });
    assert.deepEqual([ok, failed], [1, 1]);
  });
});

describe('metrics: the scrape credential', () => {
  const token = randomBytes(32).toString('base64url');
  const hash = createHash('sha256').update(token).digest('hex');
  const check = scrapeCredentialCheck(hash);
  for (const c of [
    { desc: 'the token as a bearer', header: `Bearer ${token}`, ok: true },
    { desc: 'the scheme in lower case', header: `bearer ${token}`, ok: true },
    { desc: 'no header', header: undefined, ok: false },
    { desc: 'an empty bearer', header: 'Bearer ', ok: false },
    { desc: 'another token', header: `Bearer ${randomBytes(32).toString('base64url')}`, ok: false },
    { desc: 'the hash itself', header: `Bearer ${hash}`, ok: false },
    { desc: 'the token with a suffix', header: `Bearer ${token}x`, ok: false },
    { desc: 'Basic', header: `Basic ${token}`, ok: false },
  ]) {
    it(`${c.ok ? 'accepts' : 'refuses'} ${c.desc}`, () => assert.equal(check(c.header), c.ok));
  }

  it('without a configured hash nothing is a scraper', () => {
    assert.equal(scrapeCredentialCheck(undefined)(`Bearer ${token}`), false);
  });

  it('config: the hash is 64 hex digits (stored lower case); anything else names the field', () => {
    assert.equal(configSchema.parse({ metrics: { scrapeTokenSha256: hash.toUpperCase() } }).metrics.scrapeTokenSha256, hash);
    assert.equal(configSchema.parse({}).metrics.auditVerifyIntervalSeconds, 3600);
    for (const bad of [{ scrapeTokenSha256: token }, { scrapeTokenSha256: hash.slice(1) }, { auditVerifyIntervalSeconds: -1 }, { bogus: 1 }]) {
      const r = configSchema.safeParse({ metrics: bad });
      assert.equal(r.success, false, JSON.stringify(bad));
      assert.equal(r.error?.issues[0]?.path[0], 'metrics');
    }
  });
});
