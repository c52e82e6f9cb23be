import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { silentLogger } from '../../lib/log.js';
import { execInContainer } from '../../agent/docker-engine.js';
import { DockerRuntime } from '../../agent/docker-runtime.js';
import { ContainerStartError } from '../../agent/errors.js';
import { removeSessionNetworkRules, type NetworkOptions } from '../../agent/network.js';
import { LABELS, RuntimeUnavailableError, type ContainerExit, type RuntimeContainer, type SessionSpec } from '../../core/sessions/runtime.js';
import { sleep, waitFor } from '../helpers/net.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * The Docker runtime against the real engine and the real session image (xpra + Firefox):
 * readiness, the CIS Docker Benchmark 5.x settings (inspect) and what they mean inside the
 * container (K1, K2), tokens and claims through the image's own tools, OOM (K4), a fork bomb
 * (K3), exits through the event stream (also across a dropped stream), list/remove, and a
 * missing or hung engine. Own instance id, network and bridge; everything is removed after.
 * The image is built by prepare() when missing (minutes, once).
 */

const tag = randomBytes(3).toString('hex');
const instanceId = `hs-rt-test-${tag}`;
const network: NetworkOptions = { name: `hs-rt-net-${tag}`, bridge: `hsrt${tag}`, allow: [] };
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const SESSION_DOMAIN = 'sessions.test';
const LIMITS = { memoryMb: 1024, cpus: 1, pids: 256 };
const POLICY = { clipboard: true, fileTransfer: false, printing: false, audio: false, webcam: false, downloads: true, fileUrls: false };

let caPem = '';
let issue: (hostname: string) => Promise<{ certPem: string; keyPem: string }>;

async function spec(overrides: Partial<SessionSpec> = {}): Promise<SessionSpec> {
  const sessionId = overrides.sessionId ?? `${tag}-${randomBytes(4).toString('hex')}`;
  return { sessionId, userId: 'user-1', limits: LIMITS, policy: POLICY, tls: await issue(`${sessionId}.${SESSION_DOMAIN}`), ...overrides };
}

/** Completes a TLS handshake with the session's xpra, verifying its certificate against our CA. */
function tlsHandshake(up: { host: string; port: number }, servername: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: up.host, port: up.port, servername, ca: caPem, timeout: 5_000 });
    s.once('secureConnect', () => {
      s.destroy();
      resolve();
    });
    s.once('timeout', () => s.destroy(new Error('TLS handshake timed out')));
    s.once('error', reject);
  });
}

/** `xpra id` through the session's TLS port with `token` as the password (the real 3.1 client). */
function xpraLogin(up: { host: string; port: number }, sni: string, token: string): Promise<number | null> {
  const dir = mkdtempSync(join(tmpdir(), 'hs-rt-xpra-'));
  writeFileSync(join(dir, 'ca.pem'), caPem);
  writeFileSync(join(dir, 'token'), token, { mode: 0o600 });
  // `xpra version` is answered without authentication; `id` needs a login.
  const args = ['id', `ssl://${up.host}:${up.port}/`, `--ssl-ca-certs=${dir}/ca.pem`, `--ssl-server-hostname=${sni}`, `--password-file=${dir}/token`];
  const env = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` };
  return new Promise((resolve) => {
    execFile('xpra', args, { env, timeout: 30_000, killSignal: 'SIGKILL' }, (err) => {
      rmSync(dir, { recursive: true, force: true });
      resolve(err ? (typeof err.code === 'number' ? err.code : null) : 0);
    });
  });
}

/** Starts a command in the container without waiting for it (as uid 1000). */
async function startDetached(containerId: string, cmd: string[]): Promise<void> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: cmd, User: '1000:1000' });
  const res = await exec.start({ Detach: true });
  res.destroy();
}

/** The container's pids cgroup folder on the host (cgroup v1 or v2), from its init's /proc entry. */
function pidsCgroup(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes('pids'));
  if (v1) return `/sys/fs/cgroup/pids${v1.split(':')[2]}`;
  const v2 = lines.find((l) => l.startsWith('0::'));
  assert.ok(v2, `no pids cgroup for pid ${pid}`);
  return `/sys/fs/cgroup${v2.slice(3)}`;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function settle<T>(p: Promise<T>): Promise<{ value?: T; err?: unknown; ms: number }> {
  const t0 = Date.now();
  try {
    return { value: await p, ms: Date.now() - t0 };
  } catch (err) {
    return { err, ms: Date.now() - t0 };
  }
}

async function exists(id: string): Promise<boolean> {
  return docker
    .getContainer(id)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

describe('Docker runtime (real engine, real session image)', () => {
  const runtime = new DockerRuntime({ logger: silentLogger(), instanceId, network, readyTimeoutMs: 90_000 });
  const exits: ContainerExit[] = [];
  const dirs = scratchDirs('hs-rt-');
  let main: RuntimeContainer;
  let mainSpec: SessionSpec;
  const foreign: string[] = [];
  let prepared = '';

  before(async () => {
    const progress: string[] = [];
    const ca = await loadOrCreateCa(dirs(), silentLogger());
    caPem = ca.certPem;
    issue = async (hostname) => {
      const key = await generateRsaKey(2048);
      const now = Date.now();
      const certPem = signServerCert(ca, { hostname, publicKeyPem: key.publicKeyPem, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
      return { certPem, keyPem: key.privateKeyPem };
    };
    runtime.onExit((e) => exits.push(e));
    const t0 = Date.now();
    await runtime.prepare((line) => progress.push(line));
    prepared = `prepare(): ${Date.now() - t0} ms${progress.length ? `, built the session image (${progress.length} lines of output)` : ''}`;
  });

  after(async () => {
    await runtime.close();
    const mine = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${instanceId}`] } });
    for (const c of [...mine.map((m) => m.Id), ...foreign]) await docker.getContainer(c).remove({ force: true }).catch(() => {});
    await docker.getNetwork(network.name!).remove().catch(() => {});
    await removeSessionNetworkRules(network);
  });

  it('create resolves once the session is ready; xpra serves the session certificate on the upstream', async (t) => {
    mainSpec = await spec();
    const t0 = Date.now();
    main = await runtime.create(mainSpec);
    t.diagnostic(prepared);
    t.diagnostic(`create → ready: ${Date.now() - t0} ms`);
    assert.equal(main.running, true);
    assert.equal(main.sessionId, mainSpec.sessionId);
    assert.ok(main.upstream && net.isIPv4(main.upstream.host));
    assert.equal(main.upstream.port, 14500);
    await tlsHandshake(main.upstream, `${mainSpec.sessionId}.${SESSION_DOMAIN}`);
  });

  it('meets the CIS Docker Benchmark 5.x container checks (inspect)', async () => {
    const i = await docker.getContainer(main.containerId).inspect();
    const h = i.HostConfig;
    const sensitive = ['/', '/boot', '/dev', '/etc', '/lib', '/proc', '/sys', '/usr', '/var/run', '/run'];
    const mounts = i.Mounts.filter((m) => m.Type === 'bind' || m.Type === 'volume');
    // Check ids as in the CIS Docker Benchmark 1.2/1.3 (docker-bench-security v1.6 ids in brackets).
    const checks: [string, boolean][] = [
      ['4.1 runs as a non-root user', i.Config.User === '1000:1000'],
      ['5.3 [5.4] all capabilities dropped, none added', JSON.stringify(h.CapDrop) === '["ALL"]' && (h.CapAdd ?? []).length === 0],
      ['5.4 [5.5] not privileged', h.Privileged === false],
      ['5.5 [5.6] no sensitive host directory mounted', mounts.every((m) => !sensitive.some((s) => m.Source === s || m.Source.startsWith(`${s}/`))) && (h.Binds ?? []).length === 0],
      ['5.7 [5.8] no privileged (or any) ports published', Object.keys(h.PortBindings ?? {}).length === 0 && h.PublishAllPorts === false],
      ['5.9 [5.10] host network namespace not shared', h.NetworkMode === network.name],
      ['5.10 [5.11] memory limited, no swap beyond it', (h.Memory ?? 0) === LIMITS.memoryMb * 1024 * 1024 && h.MemorySwap === h.Memory],
      ['5.11 [5.12] CPU limited', h.NanoCpus === LIMITS.cpus * 1e9],
      ['5.12 [5.13] root filesystem read-only', h.ReadonlyRootfs === true],
      ['5.14 [5.15] no restart policy (the manager decides)', h.RestartPolicy?.Name === 'no'],
      ['5.15 [5.16] host PID namespace not shared', h.PidMode !== 'host'],
      ['5.16 [5.17] host IPC namespace not shared', h.IpcMode === 'private'],
      ['5.17 [5.18] no host devices', (h.Devices ?? []).length === 0],
      ['5.20 [5.21] host UTS namespace not shared', h.UTSMode !== 'host'],
      ['5.21 [5.22] seccomp not unconfined', !(h.SecurityOpt ?? []).some((o: string) => /seccomp[=:]unconfined/.test(o))],
      ['5.25 [5.26] no-new-privileges', (h.SecurityOpt ?? []).includes('no-new-privileges:true')],
      ['5.28 [5.29] PIDs limited', h.PidsLimit === LIMITS.pids],
      ['5.30 [5.31] host user namespace not shared', h.UsernsMode !== 'host'],
      ['5.31 [5.32] Docker socket not mounted', !i.Mounts.some((m) => m.Source.includes('docker.sock')) && !(h.Binds ?? []).some((b: string) => b.includes('docker.sock'))],
      ['OOM killer not disabled', h.OomKillDisable === false],
      ['not auto-removed (exit code and OOM flag stay readable)', h.AutoRemove === false],
      ['tmpfs /tmp writable by uid 1000, nosuid, nodev', /^rw,nosuid,nodev,mode=1777,size=\d+m$/.test(h.Tmpfs?.['/tmp'] ?? '')],
      ['only on the sessions network', Object.keys(i.NetworkSettings.Networks).join() === network.name],
    ];
    const failed = checks.filter(([, ok]) => !ok).map(([name]) => name);
    assert.deepEqual(failed, [], `violations: ${failed.join('; ')}`);
    assert.equal(i.Name, `/hs-${mainSpec.sessionId}`);
    assert.deepEqual(
      [LABELS.managed, LABELS.instance, LABELS.session, LABELS.user].map((l) => i.Config.Labels[l]),
      ['1', instanceId, mainSpec.sessionId, 'user-1'],
    );
  });

  it('inside: uid 1000, no capabilities, no new privileges, seccomp filtering, / read-only, /tmp writable', async () => {
    const run = (cmd: string[]) => execInContainer(docker, main.containerId, cmd);
    assert.equal((await run(['id', '-u'])).output.trim(), '1000');
    const status = (await run(['cat', '/proc/self/status'])).output;
    assert.match(status, /^CapEff:\s+0+$/m);
    assert.match(status, /^CapPrm:\s+0+$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^Seccomp:\s+2$/m);
    assert.notEqual((await run(['touch', '/hs-root-write'])).exitCode, 0, 'writing / fails');
    assert.notEqual((await run(['touch', '/usr/local/bin/x'])).exitCode, 0, 'writing /usr fails');
    assert.equal((await run(['sh', '-c', 'echo ok > /tmp/hs-write && cat /tmp/hs-write'])).output.trim(), 'ok');
    // As root (uid 0 without capabilities) the root FS is still read-only.
    assert.notEqual((await execInContainer(docker, main.containerId, ['touch', '/root-write'], { user: '0' })).exitCode, 0);
  });

  it('allowToken lets exactly one xpra login in; bad input and refused tokens are errors', async () => {
    const token = randomBytes(32).toString('base64url');
    const sni = `${mainSpec.sessionId}.${SESSION_DOMAIN}`;
    assert.notEqual(await xpraLogin(main.upstream!, sni, token), 0, 'unknown token refused');
    await runtime.allowToken(main.containerId, sha256(token), new Date(Date.now() + 30_000));
    assert.equal(await xpraLogin(main.upstream!, sni, token), 0, 'the allowed token logs in');
    assert.notEqual(await xpraLogin(main.upstream!, sni, token), 0, 'and only once');
    // hs-token refuses an already spent token (exit 3): the exit code is checked.
    await assert.rejects(runtime.allowToken(main.containerId, sha256(token), new Date(Date.now() + 30_000)), /hs-token exited with code 3/);
    await assert.rejects(runtime.allowToken(main.containerId, sha256('x'), new Date(Date.now() - 1_000)), /hs-token exited with code 3/);
    await assert.rejects(runtime.allowToken(main.containerId, 'not-a-hash', new Date(Date.now() + 30_000)), TypeError);
  });

  it('claim applies the new limits live and only opens http(s) URLs', async () => {
    await runtime.claim(main.containerId, 'user-2', undefined, { memoryMb: 1200, cpus: 0.5, pids: 300 });
    const h = (await docker.getContainer(main.containerId).inspect()).HostConfig;
    assert.deepEqual([h.Memory, h.MemorySwap, h.NanoCpus, h.PidsLimit], [1200 * 1024 * 1024, 1200 * 1024 * 1024, 0.5e9, 300]);
    await assert.rejects(runtime.claim(main.containerId, 'user-2', 'file:///etc/passwd'), TypeError);
    await assert.rejects(runtime.claim(main.containerId, 'user-2', 'javascript:alert(1)'), TypeError);
    await runtime.claim(main.containerId, 'user-2', 'https://example.org/');
    // hs-open's own refusal (exit 2) surfaces with its exit code: exec results are checked.
    await assert.rejects(runtime.claim(main.containerId, 'user-2', 'https://example.org/a b'), /hs-open exited with code 2/);
  });

  it('list() returns this instance’s containers only, with their upstream', async () => {
    const image = (await docker.getContainer(main.containerId).inspect()).Config.Image;
    const other = await docker.createContainer({ Image: image, Entrypoint: ['true'], Labels: { [LABELS.managed]: '1', [LABELS.instance]: `${instanceId}-other`, [LABELS.session]: 'x' } });
    const plain = await docker.createContainer({ Image: image, Entrypoint: ['true'] });
    foreign.push(other.id, plain.id);
    const listed = await runtime.list();
    assert.deepEqual(listed.map((c) => c.containerId), [main.containerId]);
    assert.deepEqual(listed[0], { ...main, userId: 'user-1' });
    await assert.rejects(runtime.remove(other.id), /not a HackStream container of instance/);
    assert.ok(await exists(other.id), 'a foreign container is never removed');
  });

  it('a fork bomb stops at the pids limit; the host and the other session keep answering', async (t) => {
    const bomb = await runtime.create(await spec({ limits: { memoryMb: 1024, cpus: 0.5, pids: 128 } }));
    const pids = pidsCgroup((await docker.getContainer(bomb.containerId).inspect()).State.Pid);
    await startDetached(bomb.containerId, ['bash', '-c', 'f() { f | f & }; f']);
    let peak = 0;
    let refused = 0;
    let lag = 0;
    const end = Date.now() + 5_000;
    // Sampled from the host's cgroup files: fast, and readable while the container still runs.
    while (Date.now() < end) {
      const t0 = Date.now();
      await sleep(20);
      lag = Math.max(lag, Date.now() - t0 - 20);
      const current = readText(`${pids}/pids.current`);
      const events = readText(`${pids}/pids.events`);
      if (current === null || events === null) break; // the cgroup is gone: the bomb took its own session down
      peak = Math.max(peak, Number(current));
      refused = Math.max(refused, Number(/^max (\d+)/m.exec(events)?.[1] ?? 0));
    }
    t.diagnostic(`fork bomb: peak ${peak} pids (limit 128), ${refused} forks refused, worst timer lag ${lag} ms`);
    assert.ok(peak >= 120 && peak <= 128, `pids peaked at ${peak}`);
    assert.ok(refused > 0, 'forks were refused at the limit');
    assert.ok(lag < 500, `the host's event loop kept running (lag ${lag} ms)`);
    await tlsHandshake(main.upstream!, `${mainSpec.sessionId}.${SESSION_DOMAIN}`);
    assert.equal((await execInContainer(docker, main.containerId, ['true'])).exitCode, 0, 'the other session still runs commands');
    await runtime.remove(bomb.containerId);
    assert.equal(await exists(bomb.containerId), false);
  });

  it('onExit reports a killed container, also after the event stream dropped and reconnected', async () => {
    // A second runtime for the same instance through a socket proxy whose connections we cut.
    const proxyPath = join(dirs(), 'docker.sock');
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const upstream = net.connect('/var/run/docker.sock');
      client.pipe(upstream).pipe(client);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      }
    });
    await new Promise<void>((r) => proxy.listen(proxyPath, r));
    const viaProxy = new DockerRuntime({ logger: silentLogger(), dockerHost: `unix://${proxyPath}`, instanceId, network });
    const seen: ContainerExit[] = [];
    viaProxy.onExit((e) => seen.push(e));
    try {
      const victim = await runtime.create(await spec({ pooled: true, userId: undefined }));
      const listed = (await runtime.list()).find((c) => c.containerId === victim.containerId);
      assert.deepEqual([listed?.pooled, listed?.userId], [true, null], 'a pool container is listed as such, without owner');
      await sleep(300);
      for (const s of sockets) s.destroy();
      await sleep(1_500);
      await docker.getContainer(victim.containerId).kill();
      const expected = { containerId: victim.containerId, sessionId: victim.sessionId, exitCode: 137, oomKilled: false };
      assert.ok(await waitFor(() => exits.some((e) => e.containerId === victim.containerId), 10_000), 'onExit fired');
      assert.deepEqual(exits.find((e) => e.containerId === victim.containerId), expected);
      assert.ok(await waitFor(() => seen.some((e) => e.containerId === victim.containerId), 10_000), 'the reconnected stream reported it');
      assert.equal(seen.filter((e) => e.containerId === victim.containerId).length, 1, 'once, not replayed twice');
      await runtime.remove(victim.containerId);
      await runtime.remove(victim.containerId);
      assert.equal(await exists(victim.containerId), false, 'remove() removed it, and again quietly');
    } finally {
      await viaProxy.close();
      for (const s of sockets) s.destroy();
      proxy.close();
    }
  });

  it('a session that runs out of memory is OOM-killed and onExit says so', async (t) => {
    const s = await spec({ limits: { memoryMb: 768, cpus: 1, pids: 256 } });
    const c = await runtime.create(s);
    const stats = await docker.getContainer(c.containerId).stats({ stream: false });
    t.diagnostic(`memory in use when ready: ${Math.round((stats.memory_stats.usage ?? 0) / 1048576)} MiB of 768`);
    await startDetached(c.containerId, ['python3', '-c', 'a = []\nwhile True: a.append(b"x" * (16 << 20))']);
    assert.ok(await waitFor(() => exits.some((e) => e.containerId === c.containerId), 20_000), 'onExit fired');
    const exit = exits.find((e) => e.containerId === c.containerId)!;
    assert.equal(exit.oomKilled, true);
    assert.equal(exit.sessionId, s.sessionId);
    assert.equal(exit.exitCode, 137);
    await runtime.remove(c.containerId);
  });

  it('create fails with the container’s last log lines on HACKSTREAM-FAILED and leaves no container', async () => {
    const before = (await runtime.list()).length;
    const r = await settle(runtime.create(await spec({ url: 'ftp://example.org/' })));
    assert.ok(r.err instanceof ContainerStartError, String(r.err));
    assert.equal(r.err.reason, 'failed');
    assert.match(r.err.message, /bad HS_URL/);
    assert.ok(r.err.logTail.some((l) => l.startsWith('HACKSTREAM-FAILED')));
    assert.equal((await runtime.list()).length, before);
  });

  it('create gives up after readyTimeoutMs, and on abort, removing the container', async () => {
    const quick = new DockerRuntime({ logger: silentLogger(), instanceId, network, readyTimeoutMs: 1_000 });
    const before = (await runtime.list()).length;
    const r = await settle(quick.create(await spec()));
    assert.ok(r.err instanceof ContainerStartError && r.err.reason === 'timeout', String(r.err));
    assert.ok(r.ms < 5_000, `gave up after ${r.ms} ms`);

    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('client went away')), 500);
    const a = await settle(runtime.create(await spec(), { signal: ac.signal }));
    assert.match(String(a.err), /client went away/);
    assert.equal((await runtime.list()).length, before);
    await quick.close();
  });

  it('remove() removes a running session and is idempotent', async () => {
    await runtime.remove(main.containerId);
    assert.equal(await exists(main.containerId), false);
    await runtime.remove(main.containerId);
    assert.deepEqual(await runtime.list(), []);
  });

  it('without an engine every call fails fast with RuntimeUnavailableError saying what to do', async () => {
    const missing = new DockerRuntime({ logger: silentLogger(), dockerHost: `unix://${join(dirs(), 'none.sock')}`, instanceId, network });
    // An engine that accepts connections and never answers (a hung dockerd).
    const hungPath = join(dirs(), 'hung.sock');
    const held: net.Socket[] = [];
    const hung = net.createServer((s) => held.push(s));
    await new Promise<void>((r) => hung.listen(hungPath, r));
    const hungRt = new DockerRuntime({ logger: silentLogger(), dockerHost: hungPath, instanceId, network });
    try {
      for (const rt of [missing, hungRt]) {
        const stop = rt.onExit(() => {});
        const s = await spec();
        const calls: Promise<unknown>[] = [rt.prepare(), rt.list(), rt.create(s), rt.remove('abc'), rt.allowToken('abc', sha256('t'), new Date()), rt.claim('abc', 'u')];
        const results = await Promise.all(calls.map((c) => settle(c)));
        for (const r of results) {
          assert.ok(r.err instanceof RuntimeUnavailableError, String(r.err));
          assert.match(r.err.message, /apt-get install docker\.io/);
          assert.match(r.err.message, /HACKSTREAM_DOCKER_HOST/);
          assert.ok(r.ms < 4_000, `failed after ${r.ms} ms`);
        }
        stop();
        await rt.close();
      }
    } finally {
      for (const s of held) s.destroy();
      hung.close();
    }
  });
});
