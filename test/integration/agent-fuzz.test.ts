import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { configSchema } from '../../core/config/schema.js';
import { openDatabase, type Database } from '../../core/store/database.js';
import { MAX_REQUEST_LINE_BYTES } from '../../lib/agent-protocol.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { buildAgent, databaseAudit, type Agent } from '../../server/agent.js';
import { waitFor } from '../helpers/net.js';
import { cleanupSessions, containersOf, testSessions } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * fast-check over the agent's socket (real DockerRuntime, real audit table): garbage, deep
 * JSON, huge numbers, wrong types and near-valid requests with one field out of range or
 * one key too many. Every line gets an error with a refusal code, every refusal an audit row
 * up to the rate limit (then one excess_rate_limit_exceeded row), the agent still says hello,
 * and no container exists afterwards.
 */

const TEST_DATABASE_URL = process.env.HACKSTREAM_TEST_DATABASE_URL ?? 'postgres://hackstream_test:hackstream_test@127.0.0.1:5432/hackstream_test';
const sessions = testSessions({ capacity: { maxContainers: 2, memoryMb: 2048 }, pidsLimit: 256 });
const schema = `t_agentfz_${randomBytes(5).toString('hex')}`;
const dirs = scratchDirs('hs-agent-fuzz-');
const RUNS = 300;
const AUDIT_PER_MINUTE = 250;
const REFUSALS = new Set(['BAD_REQUEST', 'VALIDATION_FAILED', 'UNSUPPORTED_VERSION', 'UNKNOWN_METHOD', 'LIMIT_EXCEEDED', 'NOT_OWNED']);
/** Stands for a raw JSON number literal (1e400, 2^53+1…) that JSON.stringify cannot write. */
const RAW = '__RAW_NUMBER__';

/** PEM-shaped text (not real material: the agent only bounds and shape-checks it). */
const pem = (label: string, body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
// Assembled, so the repository holds no literal private-key block.
const KEY_LABEL = ['PRIVATE', 'KEY'].join(' ');
const PEM_CERT = pem('CERTIFICATE', 'MIIBszCCAVmgAwIBAgIUQ0Zm');
const PEM_KEY = pem(KEY_LABEL, 'MIIEvQIBADANBgkqhkiG9w0B');
const LIMITS = { memoryMb: 512, cpus: 1, pids: 128 };
const POLICY = { clipboard: true, fileTransfer: false, printing: false, audio: false, webcam: false, downloads: true, fileUrls: false };

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Mutation = [path: string[], value: Json | undefined];

const validParams = (): Record<string, Record<string, Json>> => ({
  create: { sessionId: randomUUID(), userId: 'u-1', limits: LIMITS, policy: POLICY, tls: { certPem: PEM_CERT, keyPem: PEM_KEY }, url: 'https://example.org/' },
  allowToken: { containerId: 'a'.repeat(64), tokenHash: 'b'.repeat(64), expiresAt: Date.now() + 60_000 },
  claim: { containerId: 'a'.repeat(64), userId: 'u-1', limits: LIMITS },
  remove: { containerId: 'a'.repeat(64) },
  profileEnsure: { userId: randomUUID(), sizeMb: 64 },
  profileUsage: { userId: randomUUID() },
  profileDelete: { userId: randomUUID() },
  activity: { containerId: 'a'.repeat(64) },
});

/** One field out of range (or a key too many) per method; every one must be refused. */
const MUTATIONS: Record<string, Mutation[]> = {
  create: [
    [['sessionId'], 'not-a-uuid'],
    [['sessionId'], 'x'.repeat(5000)],
    [['sessionId'], 123],
    [['sessionId'], undefined],
    [['userId'], '../../root'],
    [['userId'], 'a'.repeat(200)],
    [['pooled'], 'yes'],
    [['limits', 'memoryMb'], 15],
    [['limits', 'memoryMb'], 1.5],
    [['limits', 'memoryMb'], RAW],
    [['limits', 'memoryMb'], 4096],
    [['limits', 'memoryMb'], 2049],
    [['limits', 'cpus'], 0],
    [['limits', 'cpus'], availableParallelism() + 1],
    [['limits', 'cpus'], 'one'],
    [['limits', 'pids'], 257],
    [['limits', 'pids'], 0],
    [['limits', 'privileged'], true],
    [['policy', 'clipboard'], 'on'],
    [['policy', 'devices'], true],
    [['policy', 'audio'], undefined],
    [['tls', 'certPem'], 'not pem'],
    [['tls', 'certPem'], `${PEM_CERT}${'A'.repeat(20_000)}`],
    [['tls', 'keyPem'], pem(KEY_LABEL, '$(id)')],
    [['url'], 'file:///etc/shadow'],
    [['url'], 'javascript:alert(1)'],
    [['url'], `https://example.org/${'a'.repeat(3000)}`],
    [['image'], 'alpine:latest'],
    [['binds'], ['/:/host']],
    [['privileged'], true],
    [['user'], '0:0'],
    [['network'], 'host'],
    [['capAdd'], ['SYS_ADMIN']],
    [['cmd'], ['sh', '-c', 'id']],
  ],
  allowToken: [
    [['containerId'], 'abc'],
    [['containerId'], 'A'.repeat(64)],
    [['tokenHash'], 'b'.repeat(63)],
    [['tokenHash'], 'B'.repeat(64)],
    [['expiresAt'], Date.now() + 11 * 60_000],
    [['expiresAt'], -1],
    [['expiresAt'], RAW],
    [['expiresAt'], '2030-01-01'],
  ],
  claim: [
    [['userId'], undefined],
    [['limits', 'memoryMb'], 4096],
    [['limits', 'pids'], 10_000],
    [['url'], 'ftp://example.org/'],
    [['containerId'], '../../var/run/docker.sock'],
  ],
  remove: [
    [['containerId'], ''],
    [['containerId'], { $ne: null }],
    [['force'], true],
  ],
  // Two numbers back, nothing to run: a command, a user or a path is a key too many.
  activity: [
    [['containerId'], '../../etc'],
    [['cmd'], ['id']],
    [['user'], 'root'],
  ],
  // A profile is named by a user id that must be a uuid; its size is bounded twice.
  profileEnsure: [
    [['userId'], '../../root'],
    [['userId'], '/var/lib/docker'],
    [['userId'], 'alice'],
    [['userId'], undefined],
    [['sizeMb'], 16],
    [['sizeMb'], 1.5],
    [['sizeMb'], RAW],
    [['sizeMb'], 9000],
    [['sizeMb'], '64'],
    [['path'], '/etc'],
  ],
  profileUsage: [
    [['userId'], '..'],
    [['userId'], { $ne: null }],
    [['mountPath'], '/'],
  ],
  profileDelete: [
    [['userId'], '*'],
    [['userId'], ''],
    [['image'], '/etc/passwd'],
  ],
};

function mutate(params: Record<string, Json>, [path, value]: Mutation): Record<string, Json> {
  const copy = JSON.parse(JSON.stringify(params)) as Record<string, Json>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

const rawNumber = fc.constantFrom('1e400', '-1e400', '1e-400', '9007199254740993', '123456789012345678901234567890', '-0');
const withRaw = (obj: unknown, raw: string) => JSON.stringify(obj).replace(`"${RAW}"`, raw);
const oneLine = (s: string) => s.replace(/\n/g, ' ');

const nearValid = fc
  .constantFrom(...Object.keys(MUTATIONS))
  .chain((method) => fc.tuple(fc.constant(method), fc.constantFrom(...MUTATIONS[method]!), rawNumber))
  .map(([method, m, raw]) => withRaw({ v: 1, id: 11, method, params: mutate(validParams()[method]!, m) }, raw));

const badEnvelope = fc
  .tuple(
    fc.constantFrom<[string, Json | undefined]>(
      ['v', 0],
      ['v', 2],
      ['v', '1'],
      ['v', 1.5],
      ['v', RAW],
      ['v', undefined],
      ['id', -1],
      ['id', 1.5],
      ['id', '1'],
      ['id', RAW],
      ['id', null],
      ['method', 'exec'],
      ['method', 'Create'],
      ['method', '__proto__'],
      ['method', 'constructor'],
      ['method', 'x'.repeat(100)],
      ['method', 5],
      ['params', []],
      ['params', null],
      ['params', { cmd: 'id' }],
      ['cmd', 'id'],
    ),
    rawNumber,
  )
  .map(([[key, value], raw]) => {
    const envelope: Record<string, Json> = { v: 1, id: 12, method: 'hello', params: {} };
    if (value === undefined) delete envelope[key];
    else envelope[key] = value;
    // -0 and 1e-400 read as 0, a valid id: only out-of-range literals here.
    return withRaw(envelope, key === 'id' && ['-0', '1e-400'].includes(raw) ? '1e400' : raw);
  });

/**
 * A valid request for a container that is not ours (an engine lookup, then NOT_OWNED); not
 * remove, which answers a container that is gone quietly (it is idempotent).
 */
const notOwned = fc
  .tuple(fc.stringMatching(/^[0-9a-f]{64}$/), fc.constantFrom('allowToken', 'claim'))
  .map(([containerId, method]) => JSON.stringify({ v: 1, id: 13, method, params: { ...validParams()[method], containerId } }));

const deep = fc
  .tuple(fc.integer({ min: 1_000, max: 200_000 }), fc.boolean())
  .map(([n, inParams]) => {
    const nested = `${'['.repeat(n)}${']'.repeat(n)}`;
    return inParams ? `{"v":1,"id":14,"method":"hello","params":{"a":${nested}}}` : nested;
  });

const lines = fc.oneof(
  { arbitrary: fc.string({ maxLength: 300 }).map(oneLine), weight: 3 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 300 }).map(oneLine), weight: 2 },
  { arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)), weight: 2 },
  { arbitrary: nearValid, weight: 8 },
  { arbitrary: badEnvelope, weight: 3 },
  { arbitrary: notOwned, weight: 1 },
  { arbitrary: deep, weight: 1 },
  { arbitrary: fc.constant('x'.repeat(MAX_REQUEST_LINE_BYTES + 1)), weight: 1 },
);

/** One connection; sends a line and waits for the next answer (events skipped). Reconnects after a close. */
class RawClient {
  private socket: net.Socket | null = null;
  private buf = '';
  private waiter: ((m: Record<string, unknown> | null) => void) | null = null;
  private closed: Promise<void> | null = null;

  constructor(private readonly path: string) {}

  async send(line: string): Promise<Record<string, unknown> | null> {
    const s = this.socket ?? (await this.open());
    const answer = new Promise<Record<string, unknown> | null>((r) => (this.waiter = r));
    s.write(`${line}\n`);
    const m = await answer;
    // The agent answers an oversized line and closes: the next line goes on a new connection.
    if (Buffer.byteLength(line) > MAX_REQUEST_LINE_BYTES && this.closed) await this.closed;
    return m;
  }

  close(): void {
    this.socket?.destroy();
  }

  private open(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.path);
      s.setEncoding('utf8');
      s.once('connect', () => {
        this.socket = s;
        this.buf = '';
        resolve(s);
      });
      this.closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', reject);
      s.on('data', (d: string) => {
        this.buf += d;
        for (let nl = this.buf.indexOf('\n'); nl !== -1; nl = this.buf.indexOf('\n')) {
          const m = JSON.parse(this.buf.slice(0, nl)) as Record<string, unknown>;
          this.buf = this.buf.slice(nl + 1);
          if (!('event' in m)) this.answer(m);
        }
      });
      s.on('close', () => {
        if (this.socket === s) this.socket = null;
        this.answer(null);
      });
    });
  }

  private answer(m: Record<string, unknown> | null): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(m);
  }
}

describe('agent RPC fuzz (fast-check, real runtime and audit table)', () => {
  let db: Database;
  let agent: Agent;
  let socketDir: string;
  let socketPath: string;

  before(async () => {
    db = await openDatabase({ databaseUrl: TEST_DATABASE_URL, schema, dataDir: dirs(), logger: silentLogger() });
    socketDir = mkdtempSync(join(tmpdir(), 'hs-agent-fz-'));
    chmodSync(socketDir, 0o700);
    socketPath = join(socketDir, 'agent.sock');
    const config = configSchema.parse({ dataDir: dirs(), sessions });
    agent = buildAgent({ config, logger: process.env.AGENT_TEST_LOG ? createLogger({ level: "debug" }) : silentLogger(), socketPath, allowedUids: [process.getuid?.() ?? 0], audit: databaseAudit(db), auditPerMinute: AUDIT_PER_MINUTE });
    await agent.listen();
  });

  after(async () => {
    await agent?.close();
    await cleanupSessions(sessions);
    await db?.close();
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
    if (socketDir) rmSync(socketDir, { recursive: true, force: true });
  });

  it(`answers ${RUNS} hostile lines with refusal codes, audits them (rate-limited) and keeps serving`, async (t) => {
    const client = new RawClient(socketPath);
    const codes: string[] = [];
    const t0 = Date.now();
    await fc.assert(
      fc.asyncProperty(lines, async (line) => {
        const answer = await client.send(line);
        assert.ok(answer, `no answer to ${line.slice(0, 120)}`);
        assert.equal(answer.ok, false, `accepted: ${line.slice(0, 200)}`);
        const error = answer.error as { code: string; message: string };
        assert.ok(REFUSALS.has(error.code), `${error.code}: ${error.message} for ${line.slice(0, 200)}`);
        assert.ok(typeof error.message === 'string' && error.message.length <= 2048);
        codes.push(error.code);
      }),
      { numRuns: RUNS, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    );
    const elapsed = Date.now() - t0;
    const hello = await client.send(JSON.stringify({ v: 1, id: 99, method: 'hello', params: {} }));
    client.close();
    assert.equal(hello?.ok, true, 'the agent still answers hello');
    assert.equal((await containersOf(sessions.instanceId)).length, 0, 'no container was created');

    const audited = Math.min(codes.length, AUDIT_PER_MINUTE);
    const expected = audited + (codes.length > AUDIT_PER_MINUTE ? 1 : 0);
    type Row = { actor: string; action: string; details: { code?: string } };
    const rows = async (): Promise<Row[]> => db.dataSource.query('SELECT actor, action, details FROM audit_log ORDER BY id');
    assert.ok(await waitFor(async () => (await rows()).length >= expected, 20_000, 100), 'audit rows written');
    const all = await rows();
    const counts: Record<string, number> = {};
    for (const c of codes) counts[c] = (counts[c] ?? 0) + 1;
    t.diagnostic(`${codes.length} lines in ${elapsed} ms; codes ${JSON.stringify(counts)}; ${all.length} audit rows`);
    assert.ok(all.every((r) => r.actor === 'agent'));
    // The window is a minute: exact counts hold when the run took less.
    if (elapsed < 55_000) {
      assert.equal(all.length, expected);
      assert.equal(all.filter((r) => r.action === 'excess_rate_limit_exceeded').length, codes.length > AUDIT_PER_MINUTE ? 1 : 0);
      const rowCodes = all.filter((r) => r.action !== 'excess_rate_limit_exceeded').map((r) => r.details.code ?? '');
      assert.deepEqual(rowCodes.sort(), codes.slice(0, audited).sort(), 'one row per refusal, with its code');
    }
  });
});
