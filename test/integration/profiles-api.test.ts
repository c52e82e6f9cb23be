import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execInContainer } from '../../agent/docker-engine.js';
import type { ConfigInput } from '../../core/config/schema.js';
import { LABELS } from '../../core/sessions/runtime.js';
import type { SessionView } from '../../core/sessions/view.js';
import { errorCode, request, type ApiResponse } from '../helpers/api.js';
import { freeBytes, fsckReadOnly, mountsUnder, unmountProfiles } from '../helpers/profiles.js';
import { cleanupSessions, containersOf, docker, testSessions, type CreatedSession } from '../helpers/sessions.js';
import { dropSchema, TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/store.js';
import { deleteRedisKeys } from '../helpers/redis.js';
import { scratchDirs } from '../helpers/tmp.js';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';

/*
 * profile "persist" end to end: a whole HackStream in a child process (so it can be SIGKILLed
 * mid-session), the real agent with real loop-mounted volumes, real session containers with
 * Firefox on the volume, and writes from inside the container as its user (uid 1000).
 */

const CHILD = join(import.meta.dirname, '../fixtures/profiles-server.ts');
const ADMIN = { username: 'root-admin', password: 'Profiles-Admin-Pass-1' };
const PROFILE_MB = 64;
const dirs = scratchDirs('hs-profiles-api-');
const sessions = testSessions({ connectTokenTtlSeconds: 60, readyTimeoutMs: 120_000 });
const schema = `t_prof_${randomBytes(5).toString('hex')}`;
const redisPrefix = `hstest:${randomBytes(6).toString('hex')}:`;
const dataDir = dirs();
const config: Partial<ConfigInput> = {
  databaseUrl: TEST_DATABASE_URL,
  redisUrl: TEST_REDIS_URL,
  redisPrefix,
  sessions: { ...sessions, profiles: { maxMb: 1024, defaultMb: 512 } },
  plugins: { 'auth-local': {}, 'quota-default': { user: { maxSessions: 3, memoryMb: 1024, profileMb: PROFILE_MB } } },
};
const run = promisify(execFile);

interface Server {
  child: ChildProcess;
  port: number;
  ca: string;
  output: () => string;
}

function startServer(): Promise<Server> {
  const child = fork(CHILD, [], {
    execArgv: ['--import', 'tsx'],
    env: { PATH: process.env.PATH ?? '', HS_PROFILES_CHILD: JSON.stringify({ config, dataDir, schema, admin: ADMIN }) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the server exited with ${code} before it was ready:\n${out.slice(-3000)}`)));
    child.on('message', (m: unknown) => {
      const msg = m as { type?: string; port?: number; ca?: string };
      if (msg.type === 'ready' && msg.port && msg.ca) resolve({ child, port: msg.port, ca: msg.ca, output: () => out });
    });
  });
}

async function kill(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGKILL');
  await exited;
}

describe('persistent profiles through the API (real agent, loop mounts, containers, a SIGKILLed server)', () => {
  let server: Server;
  const tokens: Record<string, string> = {};
  const ids: Record<string, string> = {};
  const call = (method: string, path: string, who: string, body?: unknown): Promise<ApiResponse> =>
    request(server, method, path, { token: tokens[who] ?? '', ...(body !== undefined ? { body } : {}) });
  const login = async (username: string, password: string): Promise<string> => {
    const r = await request(server, 'POST', '/v1/login', { body: { username, password }, localAddress: '127.0.0.1' });
    assert.equal(r.status, 200, r.text);
    return (r.json as { access_token: string }).access_token;
  };
  const loginAll = async () => {
    tokens.admin = await login(ADMIN.username, ADMIN.password);
    tokens.alice = await login('alice', 'alice password 1');
    tokens.bob = await login('bob', 'bob password 12');
  };
  const launch = async (who: string): Promise<CreatedSession> => {
    const r = await call('POST', '/v1/sessions', who, { app: 'firefox', profile: 'persist' });
    assert.equal(r.status, 201, r.text);
    return r.json as CreatedSession;
  };
  const stop = async (who: string, id: string): Promise<void> => {
    assert.equal((await call('POST', `/v1/sessions/${id}/stop`, who, {})).status, 200);
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      const s = (await call('GET', `/v1/sessions/${id}`, who)).json as SessionView;
      if (s.state === 'stopped') return;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.fail(`session ${id} did not stop`);
  };
  const containerOf = async (sessionId: string): Promise<string> => {
    const c = (await containersOf(sessions.instanceId)).find((x) => x.Labels[LABELS.session] === sessionId && x.State === 'running');
    assert.ok(c, `a running container for ${sessionId}`);
    return c.Id;
  };
  const sh = (containerId: string, script: string) => execInContainer(docker, containerId, ['sh', '-c', script], { user: '1000:1000', timeoutMs: 60_000 });
  const profileUsage = async (who: string) => ((await call('GET', '/v1/quotas', who)).json as { usage: { profile: { size_mb: number; used_mb: number; free_mb: number } | null } }).usage.profile;
  const volume = (who: string) => join(dataDir, 'profiles', `${ids[who]}.img`);
  let first: CreatedSession;
  let timesJson: string;

  before(async () => {
    server = await startServer();
    tokens.admin = await login(ADMIN.username, ADMIN.password);
    for (const [name, password] of [['alice', 'alice password 1'], ['bob', 'bob password 12']] as const) {
      const r = await call('POST', '/v1/users', 'admin', { username: name, password });
      assert.equal(r.status, 201, r.text);
      ids[name] = (r.json as { id: string }).id;
    }
    await loginAll();
  });

  after(async () => {
    if (server) await kill(server);
    await cleanupSessions(sessions);
    await unmountProfiles(dataDir);
    await dropSchema(schema);
    await deleteRedisKeys(redisPrefix);
  });

  it('launches a persist session on a fresh volume of the quota size; a second persist launch gets 409 PROFILE_IN_USE', async () => {
    assert.equal(await profileUsage('alice'), null, 'no volume before the first launch');
    first = await launch('alice');
    assert.equal(first.profile, 'persist');
    assert.equal(first.state, 'ready');
    const again = await call('POST', '/v1/sessions', 'alice', { app: 'firefox', profile: 'persist' });
    assert.equal(again.status, 409, again.text);
    assert.equal(errorCode(again), 'PROFILE_IN_USE');
    assert.match((again.json as { error: { message: string } }).error.message, new RegExp(`in use by session ${first.session_id}`));
    const usage = await profileUsage('alice');
    assert.equal(usage?.size_mb, PROFILE_MB);
    const c = await containerOf(first.session_id);
    // Firefox made its profile on the volume.
    const times = await sh(c, 'for i in $(seq 1 100); do [ -s /tmp/hs/profile/times.json ] && exec cat /tmp/hs/profile/times.json; sleep 0.2; done; exit 1');
    assert.equal(times.exitCode, 0, times.output);
    timesJson = times.output.trim();
    assert.match(timesJson, /"created":\d+/);
    assert.equal((await sh(c, 'echo written-in-session-1 > /tmp/hs/profile/hs-marker')).exitCode, 0);
  });

  it("a write past the quota gets ENOSPC inside the container; the host holds at most the quota and bob's volume does not move; /v1/quotas shows it", async (t) => {
    // Bob's volume, idle (his Firefox would write to it): it must not move while alice's fills.
    const bobSession = await launch('bob');
    await stop('bob', bobSession.session_id);
    const bobBefore = await profileUsage('bob');
    assert.equal(bobBefore?.size_mb, PROFILE_MB);
    const hostBefore = freeBytes(dataDir);
    const c = await containerOf(first.session_id);
    const fill = await sh(c, 'dd if=/dev/zero of=/tmp/hs/profile/fill bs=1M count=256 2>&1; echo "dd exit $?"');
    assert.match(fill.output, /No space left on device/);
    assert.match(fill.output, /dd exit 1/);
    const full = await profileUsage('alice');
    assert.ok(full && full.free_mb < 8 && full.used_mb > PROFILE_MB - 16, `full: ${JSON.stringify(full)}`);
    const held = statSync(volume('alice')).blocks * 512;
    assert.ok(held <= PROFILE_MB * 1024 * 1024, `the host holds at most the quota for it: ${held} bytes`);
    t.diagnostic(`host free space moved by ${Math.round((hostBefore - freeBytes(dataDir)) / 1024 / 1024)} MB during the fill (other work on the host included)`);
    assert.deepEqual(await profileUsage('bob'), bobBefore);
    // Firefox survives a full profile; the user frees the space again.
    assert.equal((await sh(c, 'rm /tmp/hs/profile/fill')).exitCode, 0);
    const freed = await profileUsage('alice');
    // (Firefox keeps writing its young profile meanwhile: compare with the full state, not the size.)
    assert.ok((freed?.free_mb ?? 0) > full.free_mb + 16, `freed: ${JSON.stringify(freed)}`);
  });

  it('survives a SIGKILL of the whole server mid-session: the session is adopted, the volume is clean (e2fsck -n) and still used', async () => {
    await kill(server);
    server = await startServer();
    await loginAll();
    const s = (await call('GET', `/v1/sessions/${first.session_id}`, 'alice')).json as SessionView;
    assert.ok(['ready', 'idle', 'connected'].includes(s.state), `adopted: ${s.state}`);
    assert.equal(errorCode(await call('POST', '/v1/sessions', 'alice', { app: 'firefox', profile: 'persist' })), 'PROFILE_IN_USE', 'still one persistent session');
    await stop('alice', first.session_id);
    // The volume stays mounted between sessions; unmount it (as a reboot would) to check it offline.
    const mnt = join(dataDir, 'profiles', 'mnt', ids.alice!);
    assert.equal(mountsUnder(mnt).length, 1);
    await run('umount', [mnt]);
    const fsck = await fsckReadOnly(volume('alice'));
    assert.equal(fsck.code, 0, fsck.output);
    assert.match(fsck.output, /clean|\d+\/\d+ files/);
  });

  it("keeps the profile across stop and relaunch: session 2 finds session 1's file and Firefox's own profile", async () => {
    const second = await launch('alice');
    const c = await containerOf(second.session_id);
    assert.equal((await sh(c, 'cat /tmp/hs/profile/hs-marker')).output.trim(), 'written-in-session-1');
    assert.equal((await sh(c, 'cat /tmp/hs/profile/times.json')).output.trim(), timesJson, 'the same Firefox profile (its creation time), not a new one');
    assert.equal((await sh(c, 'echo more > /tmp/hs/profile/hs-marker-2')).exitCode, 0, 'still writable');
    assert.ok(mountsUnder(join(dataDir, 'profiles', 'mnt', ids.alice!)).length === 1, 'remounted for the launch');

    // Deleting it while it is in use is refused, for the owner and for an admin.
    const reset = await call('POST', '/v1/profile/reset', 'alice', {});
    assert.equal(reset.status, 409, reset.text);
    assert.equal(errorCode(reset), 'PROFILE_IN_USE');
    const del = await call('POST', `/v1/users/${ids.alice}/profile/delete`, 'admin', {});
    assert.equal(errorCode(del), 'PROFILE_IN_USE');
    await stop('alice', second.session_id);
  });

  it('an admin sees and deletes a profile (audited); the owner resets their own; others cannot', async () => {
    const seen = await call('GET', `/v1/users/${ids.alice}/profile`, 'admin');
    assert.equal(seen.status, 200);
    assert.equal((seen.json as { profile: { size_mb: number } }).profile.size_mb, PROFILE_MB);
    assert.equal((await call('GET', `/v1/users/${ids.alice}/profile`, 'bob')).status, 403);
    assert.equal((await call('POST', `/v1/users/${ids.alice}/profile/delete`, 'bob', {})).status, 403);
    const del = await call('POST', `/v1/users/${ids.alice}/profile/delete`, 'admin', {});
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(del.json, { user_id: ids.alice, deleted: true });
    assert.equal(existsSync(volume('alice')), false);
    assert.equal(await profileUsage('alice'), null);
    const reset = await call('POST', '/v1/profile/reset', 'bob', {});
    assert.deepEqual(reset.json, { deleted: true });
    assert.equal(existsSync(volume('bob')), false);
    // The agent's rows are written behind its answers: wait for them.
    const wanted = ['admin alice success', 'agent alice success', 'bob bob success', 'agent bob success', 'alice alice failure', 'admin alice failure'];
    const name = (id: string) => (id === ids.alice ? 'alice' : id === ids.bob ? 'bob' : id === 'agent' ? 'agent' : 'admin');
    let rows: string[] = [];
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      const audit = (await call('GET', '/v1/audit?action=profile_deleted&limit=50', 'admin')).json as { items: Array<{ actor: string; target: string; result: string }> };
      rows = audit.items.map((r) => `${name(r.actor)} ${name(r.target)} ${r.result}`);
      if (wanted.every((w) => rows.includes(w))) break;
    }
    for (const want of wanted) assert.ok(rows.includes(want), `audit has "${want}": ${rows.join(', ')}`);
  });
  it('two persist launches at the same instant: exactly one starts, the other gets 409 PROFILE_IN_USE (not a failed start)', async () => {
    const answers = await Promise.all([0, 1].map(() => call('POST', '/v1/sessions', 'bob', { app: 'firefox', profile: 'persist' })));
    const statuses = answers.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, 409], answers.map((r) => r.text.slice(0, 300)).join(' | '));
    const refused = answers.find((r) => r.status === 409);
    assert.equal(refused && errorCode(refused), 'PROFILE_IN_USE');
    const started = answers.find((r) => r.status === 201)?.json as CreatedSession;
    await stop('bob', started.session_id);
  });
  it('a persist launch the quota refuses creates no volume (the volume comes after the quota check); profile_mb overridden per user', async () => {
    const r = await call('POST', '/v1/users', 'admin', { username: 'carol', password: 'carol password 1', quota: { max_sessions: 1 } });
    assert.equal(r.status, 201, r.text);
    ids.carol = (r.json as { id: string }).id;
    tokens.carol = await login('carol', 'carol password 1');
    const running = await call('POST', '/v1/sessions', 'carol', { app: 'firefox' });
    assert.equal(running.status, 201, running.text);
    const refused = await call('POST', '/v1/sessions', 'carol', { app: 'firefox', profile: 'persist' });
    assert.equal(refused.status, 409, refused.text);
    assert.equal(errorCode(refused), 'QUOTA_EXCEEDED');
    assert.equal(await profileUsage('carol'), null, 'no volume for a refused launch');
    assert.equal(existsSync(volume('carol')), false);
    await stop('carol', (running.json as CreatedSession).session_id);

    // A per-user override of the profile's size (the role's is PROFILE_MB).
    const patched = await call('PATCH', `/v1/users/${ids.carol}`, 'admin', { quota: { profile_mb: 96 } });
    assert.equal(patched.status, 200, patched.text);
    const quotas = (await call('GET', '/v1/quotas', 'carol')).json as { quota: { profile_mb: number } };
    assert.equal(quotas.quota.profile_mb, 96);
    const own = await launch('carol');
    assert.equal((await profileUsage('carol'))?.size_mb, 96, 'the volume has the override size');
    await stop('carol', own.session_id);
    const bad = await call('PATCH', `/v1/users/${ids.carol}`, 'admin', { quota: { profile_mb: 1 } });
    assert.equal(bad.status, 400, bad.text);
  });
});
