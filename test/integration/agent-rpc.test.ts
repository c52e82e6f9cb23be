import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { configSchema } from '../../core/config/schema.js';
import { openDatabase, type Database } from '../../core/store/database.js';
import { AgentCallError, AgentLimitError, AgentRuntime, AgentStartError } from '../../core/sessions/agent-runtime.js';
import { RuntimeUnavailableError, type ContainerExit, type SessionSpec } from '../../core/sessions/runtime.js';
import { silentLogger } from '../../lib/log.js';
import { buildAgent, databaseAudit, type Agent } from '../../server/agent.js';
import { waitFor } from '../helpers/net.js';
import { cleanupSessions, containersOf, docker, testSessions } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * The agent through its real socket: AgentRuntime (the control plane's client) against
 * buildAgent with the real Docker engine, the real session image and the real firewall;
 * refusals answered with their code AND written to a real audit table (Postgres, own
 * schema); a peer with a uid outside the allow-list (a child process as nobody); a client
 * that disconnects mid-create leaves no container.
 */

const TEST_DATABASE_URL = process.env.HACKSTREAM_TEST_DATABASE_URL ?? 'postgres://hackstream_test:hackstream_test@127.0.0.1:5432/hackstream_test';
const sessions = testSessions({ capacity: { maxContainers: 2, memoryMb: 2048 }, pidsLimit: 256, readyTimeoutMs: 90_000 });
const LIMITS = { memoryMb: 1024, cpus: 1, pids: 256 };
const POLICY = { clipboard: true, fileTransfer: false, printing: false, audio: false, webcam: false, downloads: true, fileUrls: false };
const schema = `t_agent_${randomBytes(5).toString('hex')}`;
const dirs = scratchDirs('hs-agent-rpc-');

let issue: (hostname: string) => Promise<{ certPem: string; keyPem: string }>;
let db: Database;
let socketDir: string;
let socketPath: string;
let agent: Agent;
let client: AgentRuntime;
const foreign: string[] = [];

const config = () => configSchema.parse({ dataDir: dirs(), sessions });
const startAgent = async () => {
  const a = buildAgent({ config: config(), logger: silentLogger(), socketPath, allowedUids: [process.getuid?.() ?? 0], audit: databaseAudit(db), socketMode: 0o666 });
  await a.listen();
  return a;
};

async function spec(overrides: Partial<SessionSpec> = {}): Promise<SessionSpec> {
  const sessionId = overrides.sessionId ?? randomUUID();
  return { sessionId, userId: 'user-1', limits: LIMITS, policy: POLICY, tls: await issue(`${sessionId}.sessions.test`), ...overrides };
}

/** Sends one line on a fresh connection and returns the first answer (events skipped). */
function exchange(line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${line}\n`));
    s.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const m = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if (!('event' in m)) {
          s.destroy();
          return resolve(m);
        }
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error('closed without an answer')));
  });
}

interface AuditRow {
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
}

async function auditRows(): Promise<AuditRow[]> {
  return db.dataSource.query('SELECT actor, action, target, details FROM audit_log ORDER BY id');
}

/** Waits for the audit row the last refusal wrote (rows are written asynchronously). */
async function nextAuditRow(before: number): Promise<AuditRow> {
  assert.ok(await waitFor(async () => (await auditRows()).length > before, 10_000), 'no audit row was written');
  const rows = await auditRows();
  assert.equal(rows.length, before + 1, 'exactly one audit row per refusal');
  return rows[rows.length - 1]!;
}

describe('agent RPC (real socket, engine, image, audit table)', () => {
  before(async () => {
    const ca = await loadOrCreateCa(dirs(), silentLogger());
    issue = async (hostname) => {
      const key = await generateRsaKey(2048);
      const now = Date.now();
      const certPem = signServerCert(ca, { hostname, publicKeyPem: key.publicKeyPem, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
      return { certPem, keyPem: key.privateKeyPem };
    };
    db = await openDatabase({ databaseUrl: TEST_DATABASE_URL, schema, dataDir: dirs(), logger: silentLogger() });
    // The nobody test needs to reach the socket: the uid check must be what refuses it.
    socketDir = mkdtempSync(join(tmpdir(), 'hs-agent-sock-'));
    chmodSync(socketDir, 0o755);
    socketPath = join(socketDir, 'agent.sock');
    agent = await startAgent();
    client = new AgentRuntime({ socketPath, logger: silentLogger() });
    const progress: string[] = [];
    await client.prepare((l) => progress.push(l));
  });

  after(async () => {
    await client?.close();
    await agent?.close();
    for (const id of foreign) await docker.getContainer(id).remove({ force: true }).catch(() => {});
    await cleanupSessions(sessions);
    await db?.close();
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
    if (socketDir) rmSync(socketDir, { recursive: true, force: true });
  });

  it('status says ready once prepared: engine, image, network and firewall', async () => {
    const s = await client.status();
    assert.deepEqual({ engine: s.engineReachable, image: s.image.present, network: s.network.applied, firewall: s.firewall.applied, ready: s.ready, reason: s.reason }, {
      engine: true,
      image: true,
      network: true,
      firewall: true,
      ready: true,
      reason: null,
    });
    assert.equal(s.network.name, sessions.network?.name);
  });

  it('create → list → allowToken → claim → remove; exits arrive as events', async (t) => {
    const exits: ContainerExit[] = [];
    client.onExit((e) => exits.push(e));
    const s = await spec({ pooled: true, userId: undefined });
    const t0 = Date.now();
    const c = await client.create(s);
    t.diagnostic(`create through the agent → ready: ${Date.now() - t0} ms`);
    assert.equal(c.sessionId, s.sessionId);
    assert.equal(c.pooled, true);
    assert.ok(c.upstream && net.isIPv4(c.upstream.host));
    assert.ok((await client.list()).some((x) => x.containerId === c.containerId && x.running));
    assert.deepEqual(await client.activity(c.containerId), { clients: 0, idleSeconds: null, tokensSpent: 0 }, 'xpra answers activity: nobody attached');
    const hash = createHash('sha256').update('a connect token').digest('hex');
    await client.allowToken(c.containerId, hash, new Date(Date.now() + 30_000));
    await client.claim(c.containerId, 'user-2', 'https://example.org/', { memoryMb: 768, cpus: 1, pids: 200 });
    const info = await docker.getContainer(c.containerId).inspect();
    assert.equal(info.HostConfig.Memory, 768 * 1024 * 1024);
    assert.equal(info.HostConfig.PidsLimit, 200);
    // The hardened settings are the agent's, whatever the request said.
    assert.equal(info.Config.User, '1000:1000');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.equal(info.HostConfig.NetworkMode, sessions.network?.name);
    await docker.getContainer(c.containerId).kill();
    assert.ok(await waitFor(() => exits.some((e) => e.containerId === c.containerId && e.sessionId === s.sessionId), 20_000), 'the exit event arrived');
    await client.remove(c.containerId);
    assert.ok(!(await client.list()).some((x) => x.containerId === c.containerId));
    await client.remove(c.containerId); // already gone: quiet
  });

  it('holds creates within capacity even when they race (the third of three is refused, no engine call)', async () => {
    const before = (await containersOf(sessions.instanceId)).length;
    assert.equal(before, 0);
    const specs = [await spec(), await spec(), await spec()];
    const results = await Promise.allSettled(specs.map((s) => client.create(s)));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 1, 'maxContainers 2: one of three refused');
    assert.ok((refused[0] as PromiseRejectedResult).reason instanceof AgentLimitError);
    assert.equal((await containersOf(sessions.instanceId)).length, 2);
    for (const r of results) if (r.status === 'fulfilled') await client.remove(r.value.containerId);
  });

  it('refuses out-of-limit and malformed requests with a stable code and one audit row each', async () => {
    const valid = await spec();
    const foreignId = (await docker.createContainer({ Image: 'hackstream/firefox-xpra:latest', Cmd: ['true'], Labels: { 'org.hackstream.managed': '1', 'org.hackstream.instance': 'someone-else' } })).id;
    foreign.push(foreignId);
    const create = (params: Record<string, unknown>) => JSON.stringify({ v: 1, id: 7, method: 'create', params: { ...valid, ...params } });
    const cases: { desc: string; line: string; code: string; action: string; target: string }[] = [
      { desc: 'not JSON', line: 'hello', code: 'BAD_REQUEST', action: 'input_validation_fail', target: '(unparsed)' },
      { desc: 'JSON but not an object', line: '[1,2]', code: 'BAD_REQUEST', action: 'input_validation_fail', target: '(unparsed)' },
      { desc: 'unknown version', line: JSON.stringify({ v: 2, id: 1, method: 'hello', params: {} }), code: 'UNSUPPORTED_VERSION', action: 'input_validation_fail', target: 'hello' },
      { desc: 'no params', line: JSON.stringify({ v: 1, id: 1, method: 'hello' }), code: 'VALIDATION_FAILED', action: 'input_validation_fail', target: 'hello' },
      { desc: 'unknown method', line: JSON.stringify({ v: 1, id: 1, method: 'exec', params: { cmd: 'id' } }), code: 'UNKNOWN_METHOD', action: 'input_validation_fail', target: '(unknown method)' },
      { desc: 'an image in a create', line: create({ image: 'alpine' }), code: 'VALIDATION_FAILED', action: 'input_validation_fail', target: 'create' },
      { desc: 'mounts in a create', line: create({ binds: ['/:/host'] }), code: 'VALIDATION_FAILED', action: 'input_validation_fail', target: 'create' },
      { desc: 'a session id that is not a uuid', line: create({ sessionId: '../../etc' }), code: 'VALIDATION_FAILED', action: 'input_validation_fail', target: 'create' },
      { desc: 'a file: URL', line: create({ url: 'file:///etc/shadow' }), code: 'VALIDATION_FAILED', action: 'input_validation_fail', target: 'create' },
      { desc: 'memory over capacity', line: create({ limits: { ...LIMITS, memoryMb: 4096 } }), code: 'LIMIT_EXCEEDED', action: 'authz_fail', target: 'create' },
      { desc: 'pids over pidsLimit', line: create({ limits: { ...LIMITS, pids: 100_000 } }), code: 'LIMIT_EXCEEDED', action: 'authz_fail', target: 'create' },
      { desc: 'more CPUs than the host', line: create({ limits: { ...LIMITS, cpus: availableParallelism() + 1 } }), code: 'LIMIT_EXCEEDED', action: 'authz_fail', target: 'create' },
      {
        desc: 'a token for an hour',
        line: JSON.stringify({ v: 1, id: 3, method: 'allowToken', params: { containerId: foreignId, tokenHash: 'a'.repeat(64), expiresAt: Date.now() + 3_600_000 } }),
        code: 'VALIDATION_FAILED',
        action: 'input_validation_fail',
        target: 'allowToken',
      },
      {
        desc: 'a token for another installation’s container',
        line: JSON.stringify({ v: 1, id: 3, method: 'allowToken', params: { containerId: foreignId, tokenHash: 'b'.repeat(64), expiresAt: Date.now() + 30_000 } }),
        code: 'NOT_OWNED',
        action: 'authz_fail',
        target: 'allowToken',
      },
      { desc: 'activity of a foreign container', line: JSON.stringify({ v: 1, id: 6, method: 'activity', params: { containerId: foreignId } }), code: 'NOT_OWNED', action: 'authz_fail', target: 'activity' },
      {
        desc: 'activity with a command to run',
        line: JSON.stringify({ v: 1, id: 7, method: 'activity', params: { containerId: foreignId, cmd: ['id'] } }),
        code: 'VALIDATION_FAILED',
        action: 'input_validation_fail',
        target: 'activity',
      },
      { desc: 'removing a foreign container', line: JSON.stringify({ v: 1, id: 4, method: 'remove', params: { containerId: foreignId } }), code: 'NOT_OWNED', action: 'authz_fail', target: 'remove' },
      {
        desc: 'claiming a container that does not exist',
        line: JSON.stringify({ v: 1, id: 5, method: 'claim', params: { containerId: 'c'.repeat(64), userId: 'u1' } }),
        code: 'NOT_OWNED',
        action: 'authz_fail',
        target: 'claim',
      },
    ];
    for (const c of cases) {
      const count = (await auditRows()).length;
      const answer = await exchange(c.line);
      assert.equal(answer.ok, false, c.desc);
      const error = answer.error as { code: string; message: string };
      assert.equal(error.code, c.code, `${c.desc}: ${error.message}`);
      assert.ok(error.message.length > 0 && error.message.length <= 2048, c.desc);
      if (c.code === 'UNSUPPORTED_VERSION') assert.match(error.message, /speaks 1/);
      const row = await nextAuditRow(count);
      assert.deepEqual(
        { actor: row.actor, action: row.action, target: row.target, code: row.details.code, uid: row.details.peerUid, pid: row.details.peerPid },
        { actor: 'agent', action: c.action, target: c.target, code: c.code, uid: process.getuid?.(), pid: process.pid },
        c.desc,
      );
    }
    const text = JSON.stringify(await auditRows());
    assert.ok(!text.includes('PRIVATE KEY') && !text.includes('b'.repeat(64)), 'no key or token hash in the audit log');
    assert.equal((await containersOf(sessions.instanceId)).length, 0, 'no container was created');
    assert.equal((await docker.getContainer(foreignId).inspect()).State.Status, 'created', 'the foreign container is untouched');
  });

  it('maps refusals to error classes on the control side', async () => {
    const count = (await auditRows()).length;
    await assert.rejects(client.create(await spec({ limits: { ...LIMITS, memoryMb: 4096 } })), AgentLimitError);
    await assert.rejects(client.remove(foreign[0]!), (err: unknown) => err instanceof AgentCallError && err.code === 'NOT_OWNED');
    assert.ok(await waitFor(async () => (await auditRows()).length === count + 2, 10_000), 'both refusals audited');
  });

  it('refuses a peer whose uid is not allowed (nobody) and audits it', async () => {
    const count = (await auditRows()).length;
    const script = `const s=require('net').connect(${JSON.stringify(socketPath)});let got='';s.on('connect',()=>s.write(JSON.stringify({v:1,id:1,method:'hello',params:{}})+'\\n'));s.on('data',d=>got+=d);s.on('error',()=>{});s.on('close',()=>{process.stdout.write(JSON.stringify({got}));});`;
    const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), { got: '' }, 'closed without an answer');
    const row = await nextAuditRow(count);
    assert.deepEqual({ actor: row.actor, action: row.action, target: row.target, code: row.details.code, uid: row.details.peerUid }, { actor: 'agent', action: 'authz_fail', target: 'connect', code: 'PEER_NOT_ALLOWED', uid: 65534 });
  });

  it('a client that disconnects during create leaves no container behind', async () => {
    const s = await spec();
    const sock = net.connect(socketPath);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(`${JSON.stringify({ v: 1, id: 1, method: 'create', params: s })}\n`);
    const mine = async () => (await containersOf(sessions.instanceId)).filter((c) => c.Labels['org.hackstream.session'] === s.sessionId);
    assert.ok(await waitFor(async () => (await mine()).length === 1, 30_000, 100), 'the container was created');
    sock.destroy();
    assert.ok(await waitFor(async () => (await mine()).length === 0, 30_000, 100), 'the abandoned container was removed');
  });

  it('a container that is not ready in time is START_FAILED (a short reason) and is removed', async () => {
    // A second agent on the same installation whose ready timeout (1 s) no Firefox meets.
    const slowPath = join(socketDir, 'slow.sock');
    const slowConfig = configSchema.parse({ dataDir: dirs(), sessions: { ...sessions, readyTimeoutMs: 1_000 } });
    const slow = buildAgent({ config: slowConfig, logger: silentLogger(), socketPath: slowPath, allowedUids: [process.getuid?.() ?? 0], audit: databaseAudit(db) });
    await slow.listen();
    const slowClient = new AgentRuntime({ socketPath: slowPath, logger: silentLogger() });
    try {
      await assert.rejects(slowClient.create(await spec()), (err: unknown) => err instanceof AgentStartError && err.message === 'the session container was not ready in time');
      assert.equal((await containersOf(sessions.instanceId)).length, 0);
    } finally {
      await slowClient.close();
      await slow.close();
    }
  });

  it('a call while the agent is down is RuntimeUnavailableError; onReconnect fires when it is back', async () => {
    let reconnected = 0;
    client.onReconnect(() => reconnected++);
    await agent.close();
    await assert.rejects(client.list(), RuntimeUnavailableError);
    agent = await startAgent();
    assert.ok(await waitFor(() => reconnected === 1, 15_000, 50), 'reconnected');
    assert.deepEqual(await client.list(), []);
  });
});
