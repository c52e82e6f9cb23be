/**
 * Floods against a gateway running in its own process (reliability-tests.md §3, G1, G4, G6):
 *  - G1: 5 × 10,000 malformed ClientHellos, 64 in parallel: nothing routed, every socket closed within the
 *    peek deadline + 1 s of its last write, RSS flat after the warm-up flood;
 *  - G4: 1,000 sockets that send 0x16 and stall do not hold up 200 real TLS connections (latency reported);
 *  - G6: 5,000 concurrent connects against maxConnections 1,000: the cap holds, no EMFILE, /health answers after.
 * Mutations come from a seeded PRNG; set HS_FLOOD_SEED to replay a run.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ConfigInput } from '../../core/config/schema.js';
import type { GatewayMetricsSnapshot } from '../../lib/edge-metrics.js';
import type { ChildMessage, ChildRequest } from '../fixtures/gateway-child.js';
import { buildClientHello, captureClientHello, ext, lengthFields } from '../helpers/client-hello.js';
import { httpsRequest, SESSION_DOMAIN, startTlsBackend, type TlsBackend } from '../helpers/gateway.js';
import { sleep, tlsConnect, waitFor } from '../helpers/net.js';

const SESSION = `flood.${SESSION_DOMAIN}`;
const UNROUTED = `nosuch.${SESSION_DOMAIN}`;
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CHILD_TSCONFIG = fileURLToPath(new URL('../fixtures/tsconfig.gateway-child.json', import.meta.url));
/** The compiled child lives under node_modules so that its imports resolve; one directory per run. */
const BUILD_DIR = join(REPO, 'node_modules', '.cache', `hackstream-floods-${process.pid}`);
const CHILD_SCRIPT = join(BUILD_DIR, 'test', 'fixtures', 'gateway-child.js');
const SEED = Number(process.env.HS_FLOOD_SEED ?? Math.floor(Math.random() * 2 ** 31));
const MB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// The gateway child process

type ChildRequestBody = ChildRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

class GatewayChild {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stderrText = '';

  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    readonly ca: string,
  ) {
    proc.on('message', (m: unknown) => {
      const msg = m as ChildMessage;
      if (msg.type !== 'reply') return;
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      if (msg.ok) w?.resolve(msg.value);
      else w?.reject(new Error(msg.error));
    });
    proc.once('exit', () => {
      for (const w of this.waiting.values()) w.reject(new Error('gateway child exited'));
      this.waiting.clear();
    });
  }

  /** Compiles the gateway and the child script (tsc, production settings) into BUILD_DIR. */
  static async build(): Promise<void> {
    const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    await promisify(execFile)(process.execPath, [tsc, '-p', CHILD_TSCONFIG, '--outDir', BUILD_DIR], { cwd: REPO });
  }

  /**
   * Starts the compiled child (plain node, no tsx) with config overrides; `nofile` sets its
   * RLIMIT_NOFILE (bash's ulimit, then exec, so the pid is node's).
   */
  static async start(config: Partial<ConfigInput>, nofile?: number): Promise<GatewayChild> {
    const proc = spawn(
      'bash',
      ['-c', '[ -z "$HS_NOFILE" ] || ulimit -n "$HS_NOFILE" || exit 90; exec "$0" "$@"', process.execPath, '--expose-gc', CHILD_SCRIPT],
      {
        cwd: REPO,
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        env: { ...process.env, HS_CHILD_CONFIG: JSON.stringify(config), HS_NOFILE: nofile === undefined ? '' : String(nofile) },
      },
    );
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 4 * MB) stderr += d.toString();
    });
    const ready = await new Promise<{ port: number; ca: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway child not ready after 30 s\n${stderr}`)), 30_000);
      proc.on('message', (m: unknown) => {
        const msg = m as ChildMessage;
        if (msg.type !== 'ready') return;
        clearTimeout(timer);
        resolve({ port: msg.port, ca: msg.ca });
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`gateway child exited with ${code}\n${stderr}`));
      });
    });
    const child = new GatewayChild(proc, ready.port, ready.ca);
    proc.stderr?.removeAllListeners('data');
    child.stderrText = stderr;
    proc.stderr?.on('data', (d: Buffer) => {
      if (child.stderrText.length < 4 * MB) child.stderrText += d.toString();
    });
    return child;
  }

  get stderr(): string {
    return this.stderrText;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  request(body: ChildRequestBody, timeoutMs = 15_000): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`gateway child: no answer to ${body.cmd} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.proc.send({ id, ...body });
    });
  }

  async metrics(): Promise<GatewayMetricsSnapshot> {
    return (await this.request({ cmd: 'metrics' })) as GatewayMetricsSnapshot;
  }

  /** VmRSS of the gateway process, in bytes. */
  rss(): number {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
    assert.ok(m, 'VmRSS not found');
    return Number(m[1]) * 1024;
  }

  /** RSS after the gateway's connections have drained and a full GC ran (retained memory, not garbage). */
  async settledRss(): Promise<{ raw: number; afterGc: number; heapUsed: number }> {
    await waitFor(async () => (await this.metrics()).activeConnections === 0, 10_000, 100);
    await sleep(200);
    const raw = this.rss();
    const { memory } = (await this.request({ cmd: 'gc' })) as { memory: NodeJS.MemoryUsage };
    await sleep(100);
    return { raw, afterGc: this.rss(), heapUsed: memory.heapUsed };
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.disconnect();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

interface Setup {
  child: GatewayChild;
  backend: TlsBackend;
  /** TCP connections the backend accepted so far. */
  backendAccepted(): number;
  close(): Promise<void>;
}

/** A gateway child with a session route to a real TLS backend (in this process) presenting the session cert. */
async function gatewayWithBackend(config: Partial<ConfigInput>, nofile?: number): Promise<Setup> {
  const child = await GatewayChild.start({ log: { level: 'warn' }, ...config }, nofile);
  try {
    const cert = (await child.request({ cmd: 'issue', hostname: SESSION })) as { certPem: string; keyPem: string; expiresAt: string };
    const backend = await startTlsBackend({ certPem: cert.certPem, keyPem: cert.keyPem, expiresAt: new Date(cert.expiresAt) });
    let accepted = 0;
    backend.server.on('connection', () => accepted++);
    await child.request({ cmd: 'route', hostname: SESSION, port: backend.port });
    return {
      child,
      backend,
      backendAccepted: () => accepted,
      async close() {
        await child.stop();
        await backend.close();
      },
    };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------
// Probes: one connection each, sending mutated bytes and waiting for the gateway to close it

/** What the test expects: refused at once, cut by the peek deadline, or either (within the deadline + 1 s). */
type Expect = 'prompt' | 'deadline' | 'any';

interface Probe {
  family: string;
  chunks: Buffer[];
  /** Pause between chunks (a drip). */
  gapMs: number;
  /** Half-close after the last chunk. */
  end: boolean;
  expect: Expect;
  localAddress?: string;
}

interface ProbeResult {
  family: string;
  expect: Expect;
  /** ms from connect to the last write, and from the last write to close. */
  writeMs: number;
  closeMs: number;
  /** Not closed by the gateway: the test's own cap destroyed it. */
  capped: boolean;
  error?: string;
}

function runProbe(port: number, probe: Probe, capMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let lastWrite = t0;
    let connected = false;
    let capped = false;
    let error: string | undefined;
    const s = net.connect({ host: '127.0.0.1', port, ...(probe.localAddress ? { localAddress: probe.localAddress } : {}) });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) error = e.code ?? e.message;
    });
    s.on('data', () => {});
    let cap = setTimeout(() => ((capped = true), s.destroy()), capMs);
    const write = async () => {
      for (let i = 0; i < probe.chunks.length && !s.destroyed; i++) {
        if (i > 0 && probe.gapMs > 0) await sleep(probe.gapMs);
        if (s.destroyed) break;
        lastWrite = performance.now();
        clearTimeout(cap);
        cap = setTimeout(() => ((capped = true), s.destroy()), capMs);
        s.write(probe.chunks[i] as Buffer);
      }
      if (probe.end && !s.destroyed) s.end();
    };
    s.once('connect', () => {
      connected = true;
      void write();
    });
    s.once('close', () => {
      clearTimeout(cap);
      const now = performance.now();
      resolve({
        family: probe.family,
        expect: probe.expect,
        writeMs: lastWrite - t0,
        closeMs: now - lastWrite,
        capped,
        ...(error ? { error } : {}),
      });
    });
  });
}

/** Runs every probe, `parallel` at a time. */
async function runProbes(port: number, probes: readonly Probe[], parallel: number, capMs: number): Promise<ProbeResult[]> {
  const results: ProbeResult[] = new Array<ProbeResult>(probes.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < probes.length; i = next++) results[i] = await runProbe(port, probes[i] as Probe, capMs);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return results;
}

/** mulberry32: small, seedable, good enough to pick mutations. */
class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(): boolean {
    return this.next() < 0.5;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }
  byteExcept(not: number): number {
    const b = this.int(0, 254);
    return b >= not ? b + 1 : b;
  }
}

interface Bases {
  /** A real ClientHello from Node's TLS stack for the routed session name (one record). */
  real: Buffer;
  /** A synthetic one (SNI, ALPN, key share, padding) for the routed name. */
  synthetic: Buffer;
  /** The same for a name with no route: used where a mutation might leave a well-formed hello. */
  unrouted: Buffer;
  oversize: Buffer;
  duplicateSni: Buffer;
  twoHostNames: Buffer;
}

async function makeBases(): Promise<Bases> {
  const extensions = (name: string) => [ext.serverName(name), ext.alpn('xpra', 'http/1.1'), ext.supportedVersions(), ext.keyShare(32), ext.padding(64)];
  return {
    real: await captureClientHello({ servername: SESSION, ALPNProtocols: ['http/1.1'] }),
    synthetic: buildClientHello({ extensions: extensions(SESSION) }),
    unrouted: buildClientHello({ extensions: extensions(UNROUTED) }),
    oversize: buildClientHello({ extensions: [ext.serverName(SESSION), ext.padding(40_000), ext.padding(30_000)] }),
    duplicateSni: buildClientHello({ extensions: [ext.serverName(SESSION), ext.supportedVersions(), ext.serverName(SESSION)] }),
    twoHostNames: buildClientHello({ extensions: [ext.serverName(SESSION, SESSION)] }),
  };
}

/** The routed name's bytes inside a hello, overwritten with random bytes (so it can never be routed). */
function scrambleSni(h: Buffer, rng: Rng): Buffer {
  const at = h.indexOf(Buffer.from(SESSION, 'latin1'));
  assert.ok(at > 0, 'base hello carries the session name');
  rng.bytes(SESSION.length).copy(h, at);
  return h;
}

type Maker = (rng: Rng, b: Bases) => Omit<Probe, 'gapMs'> & { gapMs?: number };

/**
 * Mutation families with their share of a flood. Each is built so that it cannot produce a routable hello
 * (framing broken, hello incomplete, or the routed name scrambled), so "0 routed" is a real invariant.
 */
const FAMILIES: ReadonlyArray<{ name: string; weight: number; make: Maker }> = [
  // Refused on the first byte: not a handshake record.
  { name: 'type-byte', weight: 12, make: (r, b) => {
    const h = Buffer.from(r.bool() ? b.real : b.synthetic);
    h[0] = r.byteExcept(0x16);
    return { family: 'type-byte', chunks: [h], end: r.bool(), expect: 'prompt' };
  } },
  { name: 'record-length-ffff', weight: 8, make: (r, b) => {
    const h = Buffer.from(b.real);
    h.writeUInt16BE(0xffff, 3);
    return { family: 'record-length-ffff', chunks: [r.bool() ? h : h.subarray(0, 5)], end: r.bool(), expect: 'prompt' };
  } },
  { name: 'record-length-zero', weight: 4, make: (r, b) => {
    const h = Buffer.from(b.synthetic);
    h.writeUInt16BE(0, 3);
    return { family: 'record-length-zero', chunks: [h], end: r.bool(), expect: 'prompt' };
  } },
  { name: 'record-version', weight: 4, make: (r, b) => {
    const h = Buffer.from(b.real);
    h[1] = r.byteExcept(3);
    return { family: 'record-version', chunks: [h], end: r.bool(), expect: 'prompt' };
  } },
  { name: 'handshake-type', weight: 6, make: (r, b) => {
    const h = Buffer.from(r.bool() ? b.real : b.synthetic);
    h[5] = r.byteExcept(1);
    return { family: 'handshake-type', chunks: [h], end: r.bool(), expect: 'prompt' };
  } },
  // The hello never completes; the client hangs up (closed_early).
  { name: 'handshake-length', weight: 6, make: (r, b) => {
    const h = Buffer.from(b.real);
    h.writeUIntBE(h.readUIntBE(6, 3) + r.int(1, 4000), 6, 3);
    return { family: 'handshake-length', chunks: [h], end: true, expect: 'prompt' };
  } },
  { name: 'truncated', weight: 12, make: (r, b) => {
    const h = r.bool() ? b.real : b.synthetic;
    return { family: 'truncated', chunks: [Buffer.from(h.subarray(0, r.int(1, h.length - 1)))], end: true, expect: 'prompt' };
  } },
  // Complete hellos whose name is garbage: invalid (fail closed) or unknown (alert).
  { name: 'sni-random', weight: 12, make: (r, b) => ({
    family: 'sni-random', chunks: [scrambleSni(Buffer.from(r.bool() ? b.real : b.synthetic), r)], end: r.bool(), expect: 'prompt',
  }) },
  // Random bytes anywhere in the extensions block; a hello that still parses with no SNI goes to the
  // terminated API path and may then wait out the TLS handshake deadline (set equal to the peek deadline).
  { name: 'extensions-random', weight: 12, make: (r, b) => {
    const h = scrambleSni(Buffer.from(r.bool() ? b.real : b.synthetic), r);
    const extStart = (lengthFields(h)[5]?.offset ?? 9 + 34) + 2;
    for (let i = r.int(1, 16); i > 0; i--) h[r.int(extStart, h.length - 1)] = r.int(0, 255);
    return { family: 'extensions-random', chunks: [h], end: r.bool(), expect: 'any' };
  } },
  // One length field set to a random value. The base has no route, since a lucky value can leave a valid hello.
  { name: 'length-field', weight: 10, make: (r, b) => {
    const h = Buffer.from(b.unrouted);
    const fields = lengthFields(h);
    const f = fields[r.int(0, fields.length - 1)] ?? { offset: 3, width: 2 };
    h.writeUIntBE(r.int(0, 2 ** (8 * f.width) - 1), f.offset, f.width);
    return { family: 'length-field', chunks: [h], end: true, expect: 'any' };
  } },
  { name: 'duplicate-sni', weight: 3, make: (r, b) => ({
    family: 'duplicate-sni', chunks: [r.bool() ? b.duplicateSni : b.twoHostNames], end: r.bool(), expect: 'prompt',
  }) },
  { name: 'garbage', weight: 8, make: (r) => ({ family: 'garbage', chunks: [r.bytes(r.int(1, 1500))], end: true, expect: 'any' }) },
  { name: 'oversize', weight: 1, make: (r, b) => ({ family: 'oversize', chunks: [b.oversize], end: r.bool(), expect: 'prompt' }) },
  { name: 'plain-http', weight: 1, make: () => ({
    family: 'plain-http', chunks: [Buffer.from(`GET / HTTP/1.1\r\nHost: ${SESSION}\r\n\r\n`)], end: false, expect: 'prompt',
  }) },
];

/** Probes that stay incomplete and silent (or drip) until the gateway's deadline cuts them. */
const STALLERS: ReadonlyArray<{ name: string; weight: number; make: Maker }> = [
  { name: 'stall-truncated', weight: 6, make: (r, b) => ({
    family: 'stall-truncated', chunks: [Buffer.from(b.real.subarray(0, r.int(1, b.real.length - 1)))], end: false, expect: 'deadline',
  }) },
  { name: 'stall-header', weight: 2, make: (r, b) => {
    const h = Buffer.from(b.real.subarray(0, 5));
    h.writeUInt16BE(r.int(1, 16384), 3);
    return { family: 'stall-header', chunks: [h], end: false, expect: 'deadline' };
  } },
  // 1 byte every 300 ms: the deadline is total, not an idle timer, so this is cut at the same time.
  { name: 'drip', weight: 2, make: (_r, b) => ({
    family: 'drip', chunks: [...b.real.subarray(0, 20)].map((x) => Buffer.from([x])), gapMs: 300, end: false, expect: 'deadline',
  }) },
];

function pick(rng: Rng, table: ReadonlyArray<{ weight: number; make: Maker }>, b: Bases): Probe {
  const total = table.reduce((s, f) => s + f.weight, 0);
  let x = rng.next() * total;
  for (const f of table) {
    x -= f.weight;
    if (x < 0) return { gapMs: 0, ...f.make(rng, b) };
  }
  return { gapMs: 0, ...(table[0] as { make: Maker }).make(rng, b) };
}

function makeFlood(rng: Rng, b: Bases, count: number, stallers: number): Probe[] {
  const probes = Array.from({ length: count }, (_, i) => (i < stallers ? pick(rng, STALLERS, b) : pick(rng, FAMILIES, b)));
  // Spread the stallers through the flood so they overlap with the quick ones.
  for (let i = probes.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [probes[i], probes[j]] = [probes[j] as Probe, probes[i] as Probe];
  }
  return probes;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

const fmt = (n: number) => n.toFixed(1);

/** Whether `p` settles within `ms` (the timer does not outlive the answer). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------

describe('gateway floods (gateway in its own process)', { timeout: 240_000 }, () => {
  before(() => GatewayChild.build());
  after(() => rmSync(BUILD_DIR, { recursive: true, force: true }));

  it('G1: 5 floods of 10,000 malformed ClientHellos route nothing, close every socket by the deadline + 1 s, keep RSS flat', { timeout: 150_000 }, async (t: TestContext) => {
    const DEADLINE = 2000;
    const FLOODS = 5;
    const PER_FLOOD = 10_000;
    const STALLERS_PER_FLOOD = 150;
    t.diagnostic(`seed ${SEED} (HS_FLOOD_SEED to replay)`);
    const rng = new Rng(SEED);
    const bases = await makeBases();
    // The TLS handshake deadline is set to the peek deadline so that a mangled hello which still parses
    // without SNI (handed to the terminated API path) is also gone by deadline + 1 s.
    const s = await gatewayWithBackend({ gateway: { clientHelloTimeoutMs: DEADLINE, tlsHandshakeTimeoutMs: DEADLINE } });
    try {
      const rssStart = (await s.child.settledRss()).afterGc;
      const rss: Array<{ raw: number; afterGc: number; heapUsed: number }> = [];
      const late: ProbeResult[] = [];
      const early: ProbeResult[] = [];
      const errors: ProbeResult[] = [];
      const slowPrompt: ProbeResult[] = [];
      const byFamily = new Map<string, number>();
      for (let flood = 1; flood <= FLOODS; flood++) {
        const t0 = performance.now();
        const results = await runProbes(s.child.port, makeFlood(rng, bases, PER_FLOOD, STALLERS_PER_FLOOD), 64, DEADLINE + 3000);
        const elapsed = performance.now() - t0;
        for (const r of results) {
          byFamily.set(r.family, (byFamily.get(r.family) ?? 0) + 1);
          if (r.error) errors.push(r);
          // drip: the deadline counts from the connect, so measure from there.
          const sinceStart = r.family === 'drip' ? r.writeMs + r.closeMs : r.closeMs;
          if (r.capped || sinceStart > DEADLINE + 1000) late.push(r);
          if (r.expect === 'deadline' && sinceStart < DEADLINE - 250) early.push(r);
          if (r.expect === 'prompt' && r.closeMs > DEADLINE - 250) slowPrompt.push(r);
        }
        const closeMs = results.filter((r) => r.expect === 'prompt').map((r) => r.closeMs);
        rss.push(await s.child.settledRss());
        const last = rss[rss.length - 1];
        t.diagnostic(
          `flood ${flood}: ${PER_FLOOD} probes in ${fmt(elapsed / 1000)} s; prompt close p50 ${fmt(quantile(closeMs, 0.5))} ms ` +
            `p99 ${fmt(quantile(closeMs, 0.99))} ms; RSS ${fmt((last?.raw ?? 0) / MB)} MB, after GC ${fmt((last?.afterGc ?? 0) / MB)} MB, heap ${fmt((last?.heapUsed ?? 0) / MB)} MB`,
        );
      }
      const m = await s.child.metrics();
      t.diagnostic(`RSS at rest before the floods ${fmt(rssStart / MB)} MB; families ${JSON.stringify(Object.fromEntries(byFamily))}`);
      t.diagnostic(`gateway: accepted ${m.accepted}, routed ${m.routed}, terminated ${m.terminated}, rejected ${JSON.stringify(m.rejected)}`);

      assert.ok(s.child.alive, 'gateway process is up');
      assert.deepEqual(errors.slice(0, 5), [], `${errors.length} probes could not connect`);
      assert.equal(m.routed, 0, 'no malformed hello was routed');
      assert.equal(s.backendAccepted(), 0, 'the backend saw no connection');
      assert.equal(m.accepted, FLOODS * PER_FLOOD);
      assert.deepEqual(late.slice(0, 5), [], `${late.length} sockets outlived the deadline + 1 s`);
      assert.deepEqual(early.slice(0, 5), [], `${early.length} stalling sockets were cut before the deadline`);
      assert.deepEqual(slowPrompt.slice(0, 5), [], `${slowPrompt.length} malformed hellos waited for the deadline instead of being refused`);
      assert.ok(m.rejected.client_hello_timeout >= FLOODS * STALLERS_PER_FLOOD, 'the stallers were cut by the deadline');

      const warm = rss[0]?.afterGc ?? 0;
      const growth = Math.max(...rss.slice(1).map((r) => r.afterGc)) - warm;
      t.diagnostic(`RSS growth over floods 2–${FLOODS} after the warm-up: ${fmt(growth / MB)} MB`);
      assert.ok(growth < 10 * MB, `RSS grew ${fmt(growth / MB)} MB after the warm-up flood`);
      // G1 also asks for RSS < 150 MB in absolute terms. The process also holds the control plane (and, with
      // no databaseUrl, the embedded PGlite store: ~300 MB on its own), so what the floods may add on top of the
      // gateway at rest is checked instead: 150 MB minus the 43 MB of the calibration router leaves ~100 MB.
      const added = Math.max(...rss.map((r) => r.raw)) - rssStart;
      t.diagnostic(`RSS at most ${fmt(Math.max(...rss.map((r) => r.raw)) / MB)} MB, ${fmt(added / MB)} MB over the gateway at rest`);
      assert.ok(added < 100 * MB, `the floods added ${fmt(added / MB)} MB to the gateway's RSS`);
    } finally {
      await s.close();
    }
  });

  it('G4: 1,000 stalled sockets (0x16, then silence) do not delay 200 real TLS connections', { timeout: 60_000 }, async (t: TestContext) => {
    const DEADLINE = 5000;
    const STALLED = 1000;
    // The stallers come from 127.0.0.2–.11 (100 each) and the real clients from 127.0.0.1, so the default
    // per-IP pending cap (128) is not what keeps the real clients fast: all 1,000 stay pending together,
    // and the test measures whether pending sockets cost the event loop anything.
    const s = await gatewayWithBackend({ gateway: { clientHelloTimeoutMs: DEADLINE } });
    try {
      const probes: Probe[] = Array.from({ length: STALLED }, (_, i) => ({
        family: 'slowloris', chunks: [Buffer.from([0x16])], gapMs: 0, end: false, expect: 'deadline', localAddress: `127.0.0.${2 + (i % 10)}`,
      }));
      const stalled = runProbes(s.child.port, probes, STALLED, DEADLINE + 3000);
      assert.ok(await waitFor(async () => (await s.child.metrics()).pendingConnections >= STALLED, 3000, 25), 'all stallers are pending');

      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        const c = await tlsConnect({ port: s.child.port, servername: SESSION, ca: s.child.ca });
        times.push(performance.now() - t0);
        c.destroy();
      }
      const during = await s.child.metrics();
      const results = await stalled;
      const m = await s.child.metrics();
      const p50 = quantile(times, 0.5);
      const p99 = quantile(times, 0.99);
      const closeMs = results.map((r) => r.closeMs);
      t.diagnostic(`200 real TLS connects: p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, max ${fmt(Math.max(...times))} ms; pending afterwards ${during.pendingConnections}`);
      t.diagnostic(`stallers closed after ${fmt(Math.min(...closeMs))}–${fmt(Math.max(...closeMs))} ms; rejected ${JSON.stringify(m.rejected)}`);

      // What matters: all 200 real handshakes completed while every staller was still pending (had the
      // pending sockets blocked the edge, the real ones would have waited for the stallers' deadline). Their
      // latency is reported above, not asserted: the suite holds no timed assertions (bench/ measures speed).
      assert.ok(during.pendingConnections >= STALLED, 'the stallers were still pending when the last real connection finished');
      assert.ok(Math.max(...times) < DEADLINE, `a real connection waited ${fmt(Math.max(...times))} ms: as long as the stallers' deadline`);
      assert.equal(m.routed, 200);
      assert.equal(s.backendAccepted(), 200);
      assert.equal(results.filter((r) => r.capped || r.error).length, 0, 'every staller was closed by the gateway');
      assert.ok(Math.max(...closeMs) <= DEADLINE + 1000, `slowest staller closed after ${fmt(Math.max(...closeMs))} ms`);
      // The gateway's deadline runs from its accept; the earliest point the test knows before that is
      // its own connect call (its 'connect' event, and so the write, can come hundreds of ms later
      // while 1,000 sockets open on a busy host: CI saw 4681 ms measured from the write).
      const sinceConnect = results.map((r) => r.writeMs + r.closeMs);
      assert.ok(Math.min(...sinceConnect) >= DEADLINE - 250, `a staller was closed ${fmt(Math.min(...sinceConnect))} ms after its connect, before the deadline`);
      assert.equal(m.rejected.client_hello_timeout, STALLED);
    } finally {
      await s.close();
    }
  });

  it('G6: 5,000 concurrent connects against maxConnections 1,000 hit the cap without EMFILE', { timeout: 60_000 }, async (t: TestContext) => {
    const CAP = 1000;
    const CONNECTS = 5000;
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const nofile = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? 0);
    assert.ok(nofile >= CONNECTS + 1000, `this test opens ${CONNECTS} sockets; raise ulimit -n (now ${nofile}), as npm test does`);
    // The gateway gets 4,096 descriptors: fewer than the 5,000 connects, so only the cap keeps it off EMFILE.
    // Pending sockets get a long deadline so that the first 1,000 hold their slots for the whole flood.
    const s = await gatewayWithBackend({ gateway: { maxConnections: CAP, clientHelloTimeoutMs: 30_000 } }, 4096);
    const sockets: net.Socket[] = [];
    try {
      const rssStart = (await s.child.settledRss()).afterGc;
      let connected = 0;
      let closed = 0;
      const errors = new Map<string, number>();
      const settled = Array.from({ length: CONNECTS }, (_, i) => {
        const sock = net.connect({ host: '127.0.0.1', port: s.child.port, localAddress: `127.0.0.${2 + (i % 50)}` });
        sockets.push(sock);
        return new Promise<void>((resolve) => {
          sock.once('connect', () => (connected++, resolve()));
          sock.on('error', (e: NodeJS.ErrnoException) => errors.set(e.code ?? e.message, (errors.get(e.code ?? e.message) ?? 0) + 1));
          sock.once('close', () => (closed++, resolve()));
        });
      });
      const all = Promise.all(settled);
      assert.ok(await within(all, 30_000), 'every connect finished within 30 s');
      // Rejected sockets close right after their connect; let those closes arrive.
      await waitFor(async () => (await s.child.metrics()).accepted >= CONNECTS, 10_000, 50);
      let open = -1;
      await waitFor(() => {
        const now = sockets.filter((x) => !x.destroyed).length;
        const stable = now === open;
        open = now;
        return stable;
      }, 5000, 250);
      const m = await s.child.metrics();
      const rss = s.child.rss();
      t.diagnostic(`connected ${connected}, closed by the gateway ${closed}, still open ${open}; errors ${JSON.stringify(Object.fromEntries(errors))}`);
      t.diagnostic(`gateway: accepted ${m.accepted}, active ${m.activeConnections}, rejected ${JSON.stringify(m.rejected)}, RSS ${fmt(rssStart / MB)} → ${fmt(rss / MB)} MB`);

      // A legitimate client is refused while the cap is full: the gateway closes it rather than queueing it.
      await assert.rejects(httpsRequest(s.child.port, s.child.ca, '/health'));

      assert.ok(s.child.alive, 'gateway process is up');
      assert.equal(errors.size, 0, 'no client saw a connect error');
      assert.equal(m.activeConnections, CAP, 'the cap is full and not exceeded');
      assert.equal(open, CAP, 'the clients holding a slot are exactly the cap');
      assert.equal(m.rejected.capacity, CONNECTS - CAP, 'every connection above the cap was refused for capacity');
      // G6: RSS < 300 MB for the gateway; measured as growth over the process at rest (see G1 for why).
      assert.ok(rss - rssStart < 100 * MB, `RSS ${fmt(rss / MB)} MB, ${fmt((rss - rssStart) / MB)} MB over the gateway at rest`);

      for (const x of sockets) x.destroy();
      assert.ok(await waitFor(async () => (await s.child.metrics()).activeConnections === 0, 10_000, 50), 'slots are freed');
      const times: number[] = [];
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        const res = await httpsRequest(s.child.port, s.child.ca, '/health');
        times.push(performance.now() - t0);
        assert.equal(res.status, 200);
      }
      t.diagnostic(`/health after the flood: p50 ${fmt(quantile(times, 0.5))} ms, p99 ${fmt(quantile(times, 0.99))} ms`);
      // Latency is reported, not asserted (no timed assertions in the suite; bench/ measures speed).
      assert.doesNotMatch(s.child.stderr, /EMFILE|ENFILE|listener error/, 'no descriptor exhaustion in the gateway log');
      assert.ok(s.child.alive, 'gateway process is still up');
    } finally {
      for (const x of sockets) x.destroy();
      await s.close();
    }
  });
});
