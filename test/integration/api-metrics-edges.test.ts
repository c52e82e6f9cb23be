import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EDGE_LINK_VERSION } from '../../lib/edge-link.js';
import { emptyRejects, type GatewayMetricsSnapshot } from '../../lib/edge-metrics.js';
import { writeLine } from '../../lib/ndjson.js';
import { startApi, type TestApi } from '../helpers/api.js';

/*
 * The edges' counters in control's registry stay monotonic when an edge worker goes away (so
 * Prometheus sees no false counter reset and no spike in rate()), and are not counted twice when
 * the same worker comes back after a link blip. Gauges count connected edges only.
 */

const FAKE_PID = 4_000_001;

function snapshot(n: number, open: number): GatewayMetricsSnapshot {
  return { accepted: n, routed: n, terminated: 0, rejected: { ...emptyRejects(), unknown_sni: n }, bytesUpstream: 100 * n, bytesDownstream: 1000 * n, activeTunnels: open, activeConnections: open, pendingConnections: 0 };
}

describe('metrics: edge counters across edge restarts', () => {
  let api: TestApi;
  let linkPath: string;
  before(async () => {
    api = await startApi();
    linkPath = join(api.dataDir, 'run', 'control', 'edge.sock');
  });
  after(async () => {
    await api?.close();
  });

  async function fakeEdge(): Promise<net.Socket> {
    const socket = net.connect(linkPath);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.resume();
    writeLine(socket, { t: 'hello', v: EDGE_LINK_VERSION, pid: FAKE_PID, port: 0 });
    return socket;
  }
  const link = () => api.gw.app.link;
  async function until(what: string, check: () => boolean): Promise<void> {
    const end = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > end) throw new Error(`not within 10 s: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('keeps a departed edge’s counters, drops its gauges, and does not count a returning edge twice', async () => {
    const base = await link().freshMetrics();
    const edge = await fakeEdge();
    writeLine(edge, { t: 'metrics', metrics: snapshot(5, 2) });
    await until('the report arrived', () => link().metrics().accepted === base.accepted + 5);
    assert.equal(link().metrics().activeTunnels, base.activeTunnels + 2);

    edge.destroy();
    await until('the edge left', () => link().metrics().activeTunnels === base.activeTunnels);
    const left = link().metrics();
    assert.equal(left.accepted, base.accepted + 5, 'its counters stay in the sum');
    assert.equal(left.bytesDownstream, base.bytesDownstream + 5000);
    assert.equal(left.rejected.unknown_sni, base.rejected.unknown_sni + 5);

    // The same worker reconnects: its report counts from its own start, which includes the 5.
    const back = await fakeEdge();
    try {
      writeLine(back, { t: 'metrics', metrics: snapshot(7, 1) });
      await until('the new report arrived', () => link().metrics().activeTunnels === base.activeTunnels + 1);
      assert.equal(link().metrics().accepted, base.accepted + 7, 'not 5 + 7');
      const r = await api.request('GET', '/v1/metrics', { token: await api.adminToken() });
      const accepted = Number(/^hackstream_gateway_accepted_total (\d+)$/m.exec(r.text)?.[1]);
      assert.ok(accepted >= base.accepted + 7, `the registry shows it (${accepted})`);
    } finally {
      back.destroy();
    }
  });
});
