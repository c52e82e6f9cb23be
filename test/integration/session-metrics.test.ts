import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startXvfb } from '../helpers/display.js';
import { tlsConnect } from '../helpers/net.js';
import { launch, target, testSessions, useSessionsApi, waitForSession } from '../helpers/sessions.js';
import { xpraAttach } from '../helpers/xpra-attach.js';

/*
 * The metrics of a real launch (agent, Docker, the session image) read from GET /v1/metrics:
 * the launch histogram (cold), sessions by state, the host's containers, the connect token,
 * the agent's create call, a tunnel through the real edge (open, bytes each way), and a real
 * xpra client that logs in with the launch's token (redeemed once, one attach).
 */

describe('metrics of a real session', () => {
  const ctx = useSessionsApi(testSessions());

  /** Every sample of /v1/metrics, keyed `name{labels}` as written. */
  async function samples(): Promise<Map<string, number>> {
    const { api } = ctx;
    const r = await api.request('GET', '/v1/metrics', { token: await api.adminToken() });
    assert.equal(r.status, 200);
    const out = new Map<string, number>();
    for (const m of r.text.matchAll(/^([a-z_]+(?:\{[^}]*\})?) (\S+)$/gm)) out.set(m[1] ?? '', Number(m[2]));
    return out;
  }
  const get = (s: Map<string, number>, key: string) => s.get(key) ?? 0;

  it('a cold launch, its tunnel, its client and its stop show in the metrics', { timeout: 180_000 }, async () => {
    const { api } = ctx;
    const token = await api.adminToken();
    const before = await samples();
    const session = await launch(api, token);
    const launched = await samples();
    const moved = (key: string) => get(launched, key) - get(before, key);
    assert.equal(moved('hackstream_session_launch_duration_seconds_count{app="firefox",path="cold"}'), 1);
    assert.equal(moved('hackstream_session_launches_total{result="success"}'), 1);
    assert.ok(moved('hackstream_session_launch_duration_seconds_sum{app="firefox",path="cold"}') > 0);
    assert.equal(get(launched, 'hackstream_sessions{state="ready"}'), 1);
    assert.equal(get(launched, 'hackstream_host_containers'), 1);
    assert.equal(moved('hackstream_connect_tokens_issued_total'), 1);
    assert.equal(moved('hackstream_agent_rpc_duration_seconds_count{method="create",outcome="ok"}'), 1);

    // A tunnel to the session's xpra through the edge (its TLS is the session's own, never the edge's).
    const tunnel = await tlsConnect({ port: api.port, servername: session.connect.sni, ca: session.connect.ca_cert });
    try {
      const open = await samples();
      assert.equal(get(open, 'hackstream_gateway_active_tunnels'), 1);
      assert.equal(get(open, 'hackstream_gateway_routed_total') - get(before, 'hackstream_gateway_routed_total'), 1);
      assert.ok(get(open, 'hackstream_gateway_tunnel_bytes_total{direction="upstream"}') > get(before, 'hackstream_gateway_tunnel_bytes_total{direction="upstream"}'), 'the ClientHello went up');
      assert.ok(get(open, 'hackstream_gateway_tunnel_bytes_total{direction="downstream"}') > get(before, 'hackstream_gateway_tunnel_bytes_total{direction="downstream"}'), "xpra's certificate came down");
    } finally {
      tunnel.destroy();
    }

    // The token is spent inside the container; control counts it when it checks the attach.
    const display = await startXvfb();
    const client = xpraAttach(target(api, session.connect), display.name);
    try {
      await waitForSession(api, token, session.session_id, (v) => {
        assert.ok(!client.exited(), `the client exited: ${client.output()}`);
        return v.state === 'connected';
      }, 60_000);
      const attached = await samples();
      assert.equal(get(attached, 'hackstream_connect_tokens_redeemed_total') - get(before, 'hackstream_connect_tokens_redeemed_total'), 1);
      assert.equal(get(attached, 'hackstream_session_attaches_total') - get(before, 'hackstream_session_attaches_total'), 1);
    } finally {
      client.close();
      display.close();
    }

    const stopped = await api.request('POST', `/v1/sessions/${session.session_id}/stop`, { token });
    assert.equal(stopped.status, 200, stopped.text);
    const after = await samples();
    assert.equal(get(after, 'hackstream_sessions{state="ready"}'), 0);
    assert.equal(get(after, 'hackstream_host_containers'), 0);
    const removes = get(after, 'hackstream_agent_rpc_duration_seconds_count{method="remove",outcome="ok"}') - get(before, 'hackstream_agent_rpc_duration_seconds_count{method="remove",outcome="ok"}');
    assert.ok(removes >= 1, 'the container was removed through the agent');
  });
});
