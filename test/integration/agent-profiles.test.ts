import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { execInContainer } from '../../agent/docker-engine.js';
import { loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { configSchema } from '../../core/config/schema.js';
import { AgentCallError, AgentLimitError, AgentRuntime } from '../../core/sessions/agent-runtime.js';
import type { SessionSpec } from '../../core/sessions/runtime.js';
import { openDatabase, type Database } from '../../core/store/database.js';
import { silentLogger } from '../../lib/log.js';
import { buildAgent, databaseAudit, type Agent } from '../../server/agent.js';
import { waitFor } from '../helpers/net.js';
import { mountsUnder, unmountProfiles } from '../helpers/profiles.js';
import { cleanupSessions, docker, testSessions } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * Persistent profile volumes through the agent's real socket: real sparse images, mkfs.ext4,
 * loop mounts, a real session container with the volume as Firefox's profile; refusals
 * answered with their code and written to a real audit table (Postgres, own schema).
 */

const TEST_DATABASE_URL = process.env.HACKSTREAM_TEST_DATABASE_URL ?? 'postgres://hackstream_test:hackstream_test@127.0.0.1:5432/hackstream_test';
const sessions = testSessions({ capacity: { maxContainers: 3, memoryMb: 4096 }, readyTimeoutMs: 90_000, profiles: { maxMb: 256, defaultMb: 64 } });
const LIMITS = { memoryMb: 1024, cpus: 1, pids: 256 };
const POLICY = { clipboard: true, fileTransfer: false, printing: false, audio: false, webcam: false, downloads: true, fileUrls: false };
const schema = `t_agprof_${randomBytes(5).toString('hex')}`;
const dirs = scratchDirs('hs-agent-profiles-');
const MB = 1024 * 1024;

const sockDir = mkdtempSync(join(tmpdir(), 'hs-agprof-sock-'));
after(() => rmSync(sockDir, { recursive: true, force: true }));
let dataDir: string;
let socketPath: string;
let db: Database;
let agent: Agent;
let client: AgentRuntime;
let issue: (hostname: string) => Promise<{ certPem: string; keyPem: string }>;

const startAgent = async () => {
  const config = configSchema.parse({ dataDir, sessions });
  const a = buildAgent({ config, logger: silentLogger(), socketPath, allowedUids: [process.getuid?.() ?? 0], audit: databaseAudit(db) });
  await a.listen();
  return a;
};
const image = (userId: string) => join(dataDir, 'profiles', `${userId}.img`);
const mountPath = (userId: string) => join(dataDir, 'profiles', 'mnt', userId);

async function spec(userId: string, overrides: Partial<SessionSpec> = {}): Promise<SessionSpec> {
  const sessionId = randomUUID();
  return { sessionId, userId, limits: LIMITS, policy: POLICY, tls: await issue(`${sessionId}.sessions.test`), profile: 'persist', ...overrides };
}

interface AuditRow {
  actor: string;
  action: string;
  target: string | null;
  result: string;
  details: Record<string, unknown>;
}
const auditRows = (): Promise<AuditRow[]> => db.dataSource.query('SELECT actor, action, target, result, details FROM audit_log ORDER BY id');
async function waitForAudit(pred: (r: AuditRow) => boolean): Promise<AuditRow> {
  let found: AuditRow | undefined;
  assert.ok(
    await waitFor(async () => {
      found = (await auditRows()).find(pred);
      return found !== undefined;
    }, 10_000),
    'the audit row was not written',
  );
  return found!;
}

/** One raw request line on a fresh connection; the first answer. */
function exchange(request: object): Promise<{ ok: boolean; error?: { code: string; message: string }; result?: unknown }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${JSON.stringify(request)}\n`));
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl === -1) return;
      s.destroy();
      resolve(JSON.parse(buf.slice(0, nl)) as { ok: boolean });
    });
    s.on('error', reject);
  });
}

describe('agent: persistent profile volumes (real loop mounts, real container)', () => {
  const alice = randomUUID();
  const bob = randomUUID();

  before(async () => {
    dataDir = dirs();
    const ca = await loadOrCreateCa(dirs(), silentLogger());
    issue = async (hostname) => {
      const key = await generateRsaKey(2048);
      const now = Date.now();
      return { certPem: signServerCert(ca, { hostname, publicKeyPem: key.publicKeyPem, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) }), keyPem: key.privateKeyPem };
    };
    db = await openDatabase({ databaseUrl: TEST_DATABASE_URL, schema, dataDir: dirs(), logger: silentLogger() });
    socketPath = join(sockDir, 'agent.sock');
    agent = await startAgent();
    client = new AgentRuntime({ socketPath, logger: silentLogger() });
    await client.prepare();
  });

  after(async () => {
    await client?.close();
    await agent?.close();
    await cleanupSessions(sessions);
    if (dataDir) await unmountProfiles(dataDir);
    await db?.close();
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  });

  it('creates a sparse ext4 volume of the asked size, mounts it nosuid/nodev/noexec, owned by the session user; again is a no-op', async () => {
    const r = await client.profileEnsure(alice, 64);
    assert.equal(r.created, true);
    assert.equal(r.grownFromMb, null);
    assert.equal(r.usage.sizeMb, 64);
    assert.ok(r.usage.usedMb < 16, `a fresh volume uses little: ${r.usage.usedMb} MB`);
    assert.ok(r.usage.freeMb > 40, `most of it is free: ${r.usage.freeMb} MB`);
    assert.ok(statSync(image(alice)).blocks * 512 < 32 * MB, 'the image is sparse');
    const [m] = mountsUnder(mountPath(alice));
    assert.ok(m, 'mounted');
    assert.equal(m.fstype, 'ext4');
    assert.match(m.source, /^\/dev\/loop\d+$/);
    for (const opt of ['nosuid', 'nodev', 'noexec']) assert.ok(m.options.split(',').includes(opt), `${opt} in ${m.options}`);
    assert.equal(statSync(mountPath(alice)).uid, 1000);
    const again = await client.profileEnsure(alice, 64);
    assert.equal(again.created, false);
    assert.equal(mountsUnder(mountPath(alice)).length, 1, 'mounting is idempotent');
    const row = await waitForAudit((x) => x.action === 'profile_created' && x.target === alice);
    assert.equal(row.actor, 'agent');
    assert.equal(row.details.sizeMb, 64);
    assert.deepEqual(await client.profileUsage(bob), null, 'no volume, no usage');
  });

  it('grows a smaller volume (offline, while no session uses it) and never shrinks one', async () => {
    const grown = await client.profileEnsure(alice, 96);
    assert.equal(grown.grownFromMb, 64);
    assert.equal(grown.usage.sizeMb, 96);
    assert.ok(grown.usage.freeMb > 70, `the filesystem grew with it: ${grown.usage.freeMb} MB free`);
    const same = await client.profileEnsure(alice, 64);
    assert.equal(same.usage.sizeMb, 96);
    assert.equal(same.grownFromMb, null);
    await waitForAudit((x) => x.action === 'profile_grown' && x.target === alice);
  });

  it("refuses a volume over the agent's own maximum, whatever the caller asks (LIMIT_EXCEEDED, audited)", async () => {
    await assert.rejects(client.profileEnsure(bob, 512), (e: unknown) => e instanceof AgentLimitError && /512 MB is over the agent's 256 MB/.test(e.message));
    assert.equal(existsSync(image(bob)), false);
    const row = await waitForAudit((x) => x.action === 'authz_fail' && x.target === 'profileEnsure');
    assert.equal(row.details.code, 'LIMIT_EXCEEDED');
  });

  const BAD_IDS: Array<{ desc: string; userId: unknown }> = [
    { desc: 'a path', userId: '../../../etc' },
    { desc: 'an absolute path', userId: '/var/lib/docker' },
    { desc: 'a name', userId: 'alice' },
    { desc: 'a uuid with a suffix', userId: `${randomUUID()}/x` },
    { desc: 'a number', userId: 42 },
    { desc: 'empty', userId: '' },
  ];
  for (const method of ['profileEnsure', 'profileUsage', 'profileDelete'] as const) {
    it(`${method} refuses user ids that are not uuids with a clear error, audited, and touches nothing`, async () => {
      for (const { desc, userId } of BAD_IDS) {
        const params = method === 'profileEnsure' ? { userId, sizeMb: 64 } : { userId };
        const r = await exchange({ v: 1, id: 7, method, params });
        assert.equal(r.ok, false, desc);
        assert.equal(r.error?.code, 'VALIDATION_FAILED', desc);
        assert.match(r.error?.message ?? '', /params\.userId: must be a user id \(a uuid\)/, desc);
      }
      await waitForAudit((x) => x.action === 'input_validation_fail' && x.target === method && /userId/.test(String(x.details.message)));
      // A path is never taken from the caller either.
      const extra = await exchange({ v: 1, id: 8, method: 'profileUsage', params: { userId: alice, path: '/etc' } });
      assert.equal(extra.error?.code, 'VALIDATION_FAILED');
      assert.equal(existsSync(join(dataDir, 'etc')), false);
    });
  }

  it('refuses a persist create whose owner is not a uuid, and one without a volume', async () => {
    const r = await exchange({ v: 1, id: 9, method: 'create', params: { ...(await spec('user-1')), limits: LIMITS } });
    assert.equal(r.error?.code, 'VALIDATION_FAILED');
    assert.match(r.error?.message ?? '', /userId: a persistent profile needs the owner/);
    await assert.rejects(client.create(await spec(bob)), (e: unknown) => e instanceof AgentCallError && e.code === 'PROFILE_MISSING');
  });

  it("mounts the volume as Firefox's profile; a write past its size gets ENOSPC in the container and nothing else notices; one container per volume", async (t) => {
    await client.profileEnsure(bob, 64);
    const bobBefore = await client.profileUsage(bob);
    // Two creates on one volume at once: exactly one gets it.
    const raced = await Promise.allSettled([client.create(await spec(alice)), client.create(await spec(alice))]);
    const won = raced.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const lost = raced.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    for (const w of won) t.after(() => client.remove(w.containerId).catch(() => {}));
    assert.equal(won.length, 1, 'one create wins');
    assert.ok(lost[0] instanceof AgentCallError && lost[0].code === 'PROFILE_BUSY', String(lost[0]));
    const c = won[0]!;
    const info = await docker.getContainer(c.containerId).inspect();
    const bind = info.Mounts.find((m) => m.Destination === '/tmp/hs/profile');
    assert.equal(bind?.Source, mountPath(alice));
    assert.equal(bind?.RW, true);
    // Inside, the volume keeps the host mount's nosuid, nodev and noexec.
    const inside = await execInContainer(docker, c.containerId, ['grep', ' /tmp/hs/profile ', '/proc/mounts'], { user: '1000:1000' });
    for (const opt of ['nosuid', 'nodev', 'noexec']) assert.match(inside.output, new RegExp(`[ ,]${opt}[ ,]`), `${opt} inside: ${inside.output}`);
    // Firefox runs on the volume: it wrote its profile files there.
    assert.ok(await waitFor(async () => (await execInContainer(docker, c.containerId, ['test', '-f', '/tmp/hs/profile/prefs.js'], { user: '1000:1000' })).exitCode === 0, 30_000), 'Firefox wrote prefs.js onto the volume');

    const fill = await execInContainer(docker, c.containerId, ['dd', 'if=/dev/zero', 'of=/tmp/hs/profile/fill', 'bs=1M', 'count=200'], { user: '1000:1000', timeoutMs: 60_000 });
    assert.notEqual(fill.exitCode, 0);
    assert.match(fill.output, /No space left on device/);
    const full = await client.profileUsage(alice);
    // Full but for a few MB Firefox may free again (its journal files come and go).
    assert.ok(full && full.freeMb < 8 && full.usedMb > 75, `full: ${JSON.stringify(full)}`);
    // The host holds at most the volume's size for it; the other user's volume did not move.
    assert.ok(statSync(image(alice)).blocks * 512 <= 96 * MB);
    assert.deepEqual(await client.profileUsage(bob), bobBefore);

    await assert.rejects(client.create(await spec(alice)), (e: unknown) => e instanceof AgentCallError && e.code === 'PROFILE_BUSY');
    await assert.rejects(client.profileDelete(alice), (e: unknown) => e instanceof AgentCallError && e.code === 'PROFILE_BUSY');
    await assert.rejects(client.profileEnsure(alice, 128), (e: unknown) => e instanceof AgentCallError && e.code === 'PROFILE_BUSY', 'no growth under a live Firefox');
    await execInContainer(docker, c.containerId, ['rm', '-f', '/tmp/hs/profile/fill'], { user: '1000:1000' });
    await client.remove(c.containerId);
  });

  it('remounts every volume when the agent starts (after a reboot), contents intact', async () => {
    await client.close();
    await agent.close();
    for (const u of [alice, bob]) {
      const [m] = mountsUnder(mountPath(u));
      assert.ok(m, 'volumes stay mounted while the agent is down');
      const { execFile } = await import('node:child_process');
      await new Promise<void>((res, rej) => execFile('umount', [m.point], (err) => (err ? rej(err) : res())));
    }
    assert.equal(mountsUnder(join(dataDir, 'profiles', 'mnt')).length, 0, 'as after a reboot');
    agent = await startAgent();
    client = new AgentRuntime({ socketPath, logger: silentLogger() });
    assert.equal(mountsUnder(join(dataDir, 'profiles', 'mnt')).length, 2);
    assert.ok(existsSync(join(mountPath(alice), 'prefs.js')), "alice's Firefox profile is back");
    assert.equal((await client.profileUsage(alice))?.sizeMb, 96);
  });

  it('deletes a volume no session uses: unmounted, file gone, audited; a second delete finds none', async () => {
    assert.equal(await client.profileDelete(alice), true);
    assert.equal(existsSync(image(alice)), false);
    assert.equal(mountsUnder(mountPath(alice)).length, 0);
    assert.equal(await client.profileUsage(alice), null);
    assert.equal(await client.profileDelete(alice), false);
    const row = await waitForAudit((x) => x.action === 'profile_deleted' && x.target === alice);
    assert.equal(row.actor, 'agent');
    assert.equal(await client.profileDelete(bob), true);
  });
});
