import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { EDGE_LINK_VERSION, toEdgeSchema, type ToEdge } from '../../lib/edge-link.js';
import { readLines, writeLine } from '../../lib/ndjson.js';
import { startApi, type TestApi } from '../helpers/api.js';

/*
 * Control's end of the edge link, through its real socket: a second edge (this test) gets the
 * routes and the API certificate; a route change resolves only once every edge applied it;
 * tunnels are summed over edges; a crash report is audited; a process of another uid is refused.
 */

interface FakeEdge {
  socket: net.Socket;
  messages: ToEdge[];
  next(pred: (m: ToEdge) => boolean, ms?: number): Promise<ToEdge>;
}

/** A second edge process, as far as control can tell (it speaks the link's protocol). */
async function connectEdge(socketPath: string, opts: { ackRoutes?: boolean } = {}): Promise<FakeEdge> {
  const socket = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const messages: ToEdge[] = [];
  const waiters = new Set<() => void>();
  readLines(socket, (value) => {
    const m = toEdgeSchema.parse(value);
    messages.push(m);
    if (opts.ackRoutes !== false && (m.t === 'route' || m.t === 'unroute' || m.t === 'routes')) writeLine(socket, { t: 'ack', seq: m.seq });
    for (const w of waiters) w();
  });
  writeLine(socket, { t: 'hello', v: EDGE_LINK_VERSION, pid: process.pid, port: 0 });
  return {
    socket,
    messages,
    next: (pred, ms = 5_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = messages.find(pred);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no such message within ${ms} ms; got ${messages.map((x) => x.t).join(',')}`));
        }, ms);
        waiters.add(check);
        check();
      }),
  };
}

describe('the edge link (control ⇄ edges)', () => {
  let api: TestApi;
  let linkPath: string;
  const edges: FakeEdge[] = [];
  before(async () => {
    api = await startApi();
    linkPath = join(api.dataDir, 'run', 'control', 'edge.sock');
  });
  after(async () => {
    for (const e of edges) e.socket.destroy();
    await api.close();
  });

  it('sends a connecting edge the API certificate and every route', async () => {
    await api.gw.app.routes.add('aaaaaaaa-0000-4000-8000-000000000001.sessions.test', { host: '127.0.0.1', port: 1 });
    const e = await connectEdge(linkPath);
    edges.push(e);
    const cert = await e.next((m) => m.t === 'cert');
    assert.ok(cert.t === 'cert' && cert.pair.certPem.includes('BEGIN CERTIFICATE') && cert.pair.keyPem.includes('PRIVATE KEY'));
    const snap = await e.next((m) => m.t === 'routes');
    assert.ok(snap.t === 'routes' && snap.routes.some((r) => r.hostname === 'aaaaaaaa-0000-4000-8000-000000000001.sessions.test'));
  });

  it('resolves a route change only when every edge applied it, and the real edge routes it at once', async () => {
    const slow = await connectEdge(linkPath, { ackRoutes: false });
    edges.push(slow);
    await slow.next((m) => m.t === 'routes');
    const hostname = 'bbbbbbbb-0000-4000-8000-000000000002.sessions.test';
    let resolved = false;
    const adding = api.gw.app.routes.add(hostname, { host: '127.0.0.1', port: 2 }).then(() => (resolved = true));
    const msg = await slow.next((m) => m.t === 'route' && m.hostname === hostname);
    // Give the link a moment to show it does not resolve before this edge acknowledged.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(resolved, false, 'resolved before every edge applied the change');
    assert.ok(msg.t === 'route');
    writeLine(slow.socket, { t: 'ack', seq: msg.seq });
    await adding;
    assert.deepEqual(api.gw.app.edge.routes.lookup(hostname), { host: '127.0.0.1', port: 2 }, 'the in-process edge has it when add() resolves');
    slow.socket.destroy();
  });

  it('sums open tunnels over the edges for the sessions', async () => {
    const hostname = 'cccccccc-0000-4000-8000-000000000003.sessions.test';
    const [a, b] = [await connectEdge(linkPath), await connectEdge(linkPath)];
    edges.push(a, b);
    await Promise.all([a.next((m) => m.t === 'routes'), b.next((m) => m.t === 'routes')]);
    const seen: number[] = [];
    writeLine(a.socket, { t: 'tunnels', hostname, open: 2 });
    writeLine(b.socket, { t: 'tunnels', hostname, open: 1 });
    const deadline = Date.now() + 5_000;
    // Control's sum is what the session manager reads.
    const total = () => api.gw.app.link.tunnelCount(hostname);
    while (total() !== 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    seen.push(total());
    b.socket.destroy();
    while (total() !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    seen.push(total());
    assert.deepEqual(seen, [3, 2], 'two edges summed, and a lost edge no longer counts');
  });

  it('audits an edge crash report as sys_crash', async () => {
    const e = await connectEdge(linkPath);
    edges.push(e);
    await e.next((m) => m.t === 'routes');
    writeLine(e.socket, { t: 'crash', pid: 4242, error: 'edge fault for the test' });
    const deadline = Date.now() + 5_000;
    let found = false;
    while (!found && Date.now() < deadline) {
      const r = await api.request('GET', '/v1/audit?action=sys_crash', { token: await api.adminToken() });
      assert.equal(r.status, 200, r.text);
      found = (r.json as { items: Array<{ actor: string; target: string | null }> }).items.some((i) => i.actor === 'edge' && i.target === 'pid 4242');
      if (!found) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(found, 'a sys_crash row for the edge');
  });

  it('refuses a process of another uid (SO_PEERCRED), even when the socket file would let it in', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async () => {
    for (const dir of [api.dataDir, join(api.dataDir, 'run'), join(api.dataDir, 'run', 'control')]) chmodSync(dir, 0o755);
    chmodSync(linkPath, 0o666);
    const script = `const s=require('net').connect(${JSON.stringify(linkPath)});let got='';s.on('connect',()=>s.write(JSON.stringify({t:'hello',v:${EDGE_LINK_VERSION},pid:1,port:0})+'\\n'));s.on('data',d=>got+=d);s.on('close',()=>{console.log(got.length?'GOT':'CLOSED');process.exit(0)});s.on('error',e=>{console.log('ERR '+e.code);process.exit(0)});setTimeout(()=>{console.log('OPEN');process.exit(0)},3000);`;
    const out = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('close', () => resolve(text.trim()));
    });
    // Closed by control without a word (the write may race the close: EPIPE or ECONNRESET).
    assert.match(out, /^(CLOSED|ERR EPIPE|ERR ECONNRESET)$/, `control must close the connection unanswered, got ${out}`);
  });
});
