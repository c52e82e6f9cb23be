import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { silentLogger } from '../../lib/log.js';
import { execInContainer } from '../../agent/docker-engine.js';
import {
  BLOCKED_CIDRS,
  chainNames,
  ensureSessionNetwork,
  listChainRules,
  NetworkIsolationError,
  removeSessionNetworkRules,
  type NetworkOptions,
  type SessionNetwork,
} from '../../agent/network.js';
import { portOf, sleep } from '../helpers/net.js';

/*
 * Reliability K6 on the real engine: on the sessions' network a container reaches the public
 * internet (the Debian mirror) and Docker's DNS, and nothing private — not another session, not
 * the host (through the bridge gateway or its own address), not the metadata service — unless
 * the operator's allow-list says so. The host still reaches the containers.
 * Own network and bridge names, so nothing here touches another test's or the product's rules.
 */

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const suffix = randomBytes(3).toString('hex');
const opts: NetworkOptions = { name: `hs-test-net-${suffix}`, bridge: `hstn${suffix}`, allow: [] };
const LISTEN_PORT = 8080;
const log = silentLogger();

/** A throwaway image with bash and perl: the debootstrapped base, else the session image. */
async function pickImage(): Promise<string> {
  for (const tag of ['hackstream/debian-base:bookworm', 'hackstream/firefox-xpra:latest']) {
    if ((await docker.listImages({ filters: { reference: [tag] } })).length) return tag;
  }
  throw new Error('no test image: import hackstream/debian-base:bookworm or build hackstream/firefox-xpra');
}

function mirrorHost(): string {
  const text = readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
  const uri = /^URIs:\s*(\S+)/m.exec(text)?.[1];
  assert.ok(uri, 'a URIs line in debian.sources');
  return new URL(uri).hostname;
}

/** The host's address on its default-route interface (the "eth0 IP"). */
function hostAddress(): string {
  const routes = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1);
  const iface = routes.map((l) => l.split('\t')).find((f) => f[1] === '00000000')?.[0];
  const addr = iface ? networkInterfaces()[iface]?.find((a) => a.family === 'IPv4')?.address : undefined;
  assert.ok(addr, 'the host has a default-route IPv4 address');
  return addr;
}

async function startContainer(image: string, name: string, cmd: string[]): Promise<{ id: string; ip: string }> {
  const c = await docker.createContainer({
    name,
    Image: image,
    Entrypoint: [],
    Cmd: cmd,
    User: '1000:1000',
    Labels: { 'org.hackstream.test': suffix },
    HostConfig: {
      NetworkMode: opts.name,
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Init: true,
      AutoRemove: false,
    },
  });
  await c.start();
  const info = await c.inspect();
  const ip = info.NetworkSettings.Networks[opts.name!]?.IPAddress;
  assert.ok(ip, 'container has an address on the sessions network');
  return { id: c.id, ip };
}

type Outcome = 'connected' | 'refused' | 'timed out' | `failed: ${string}`;

/**
 * What `from` gets opening a TCP connection to host:port. A REJECT answers at once with a
 * reset ("refused"); a silent drop or a dead address runs out the 5 s budget ("timed out").
 */
async function attempt(from: string, host: string, port: number): Promise<Outcome> {
  const r = await execInContainer(docker, from, ['timeout', '5', 'bash', '-c', 'exec 3<>"/dev/tcp/$0/$1"', host, String(port)], {
    timeoutMs: 15_000,
  });
  if (r.exitCode === 0) return 'connected';
  if (r.exitCode === 124) return 'timed out';
  if (/Connection refused/.test(r.output)) return 'refused';
  return `failed: ${r.output.trim()}`;
}

async function canReach(from: string, host: string, port: number): Promise<boolean> {
  return (await attempt(from, host, port)) === 'connected';
}

const run = promisify(execFile);

/** The packets each rule of `chain` has matched, keyed by the rule as `iptables -S` prints it. */
async function ruleCounters(chain: string): Promise<Map<string, number>> {
  const { stdout } = await run('iptables', ['-w', '5', '-S', chain, '-v']);
  const counts = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const m = / -c (\d+) \d+/.exec(line);
    if (line.startsWith('-A ') && m) counts.set(line.replace(m[0], ''), Number(m[1]));
  }
  return counts;
}

/**
 * Asserts that `from`'s connection to host:port is refused at once and that `rule` of `chain`
 * is what refused it: its own packet counter grew across the attempt (the other rules, and
 * other tests' chains, may count what they like meanwhile).
 */
async function assertRejectedBy(chain: string, rule: string, from: string, host: string, port: number): Promise<void> {
  const key = `-A ${chain} ${rule}`;
  const before = (await ruleCounters(chain)).get(key);
  assert.ok(before !== undefined, `${chain} has the rule ${rule}`);
  const outcome = await attempt(from, host, port);
  const after = (await ruleCounters(chain)).get(key) ?? 0;
  assert.equal(outcome, 'refused', `${host}:${port} is refused by a reset, not dropped`);
  assert.ok(after > before, `${host}:${port}: the rule "${rule}" matched (${before} → ${after} packets)`);
}

const TCP_RESET = '-p tcp -j REJECT --reject-with tcp-reset';

/** The blocked range an address falls in (the FORWARD chain's rule for it names this CIDR). */
function blockedCidrOf(ip: string): string {
  const n = (a: string) => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const hit = BLOCKED_CIDRS.find((cidr) => {
    const [base = '', bits = '32'] = cidr.split('/');
    const size = 2 ** (32 - Number(bits));
    return Math.floor(n(ip) / size) === Math.floor(n(base) / size);
  });
  assert.ok(hit, `${ip} is in a blocked range`);
  return hit;
}

/** What a TCP connection from the host to host:port reads, or null when it cannot connect. */
function hostCanReach(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 3_000 });
    let connected = false;
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('connect', () => {
      connected = true;
      setTimeout(() => s.end(), 200);
    });
    s.on('timeout', () => s.destroy());
    s.on('error', () => {});
    s.on('close', () => resolve(connected ? got : null));
  });
}

async function jumpCount(parent: string, chain: string): Promise<number> {
  return (await listChainRules(parent)).filter((r) => r.includes(`-j ${chain}`)).length;
}

describe('sessions network (K6)', () => {
  let network: SessionNetwork;
  let a: { id: string; ip: string };
  let b: { id: string; ip: string };
  let hostServer: net.Server;
  let hostPort: number;
  const hostIp = hostAddress();

  before(async () => {
    const image = await pickImage();
    network = await ensureSessionNetwork(docker, opts, log);
    const listener = `use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => ${LISTEN_PORT}, Listen => 20, ReuseAddr => 1) or die $!; while (my $c = $s->accept) { print $c "hello from b\\n"; close $c }`;
    [a, b] = await Promise.all([
      startContainer(image, `hs-test-a-${suffix}`, ['sleep', 'infinity']),
      startContainer(image, `hs-test-b-${suffix}`, ['perl', '-e', listener]),
    ]);
    // A host service on every address (what Postgres would be if it listened on 0.0.0.0).
    hostServer = net.createServer((s) => {
      s.on('error', () => {}); // probes hang up at once
      s.end('host service\n');
    });
    await new Promise<void>((r) => hostServer.listen(0, '0.0.0.0', r));
    hostPort = portOf(hostServer);
    const deadline = Date.now() + 10_000;
    while ((await hostCanReach(b.ip, LISTEN_PORT)) === null && Date.now() < deadline) await sleep(100);
  });

  after(async () => {
    hostServer?.close();
    const mine = await docker.listContainers({ all: true, filters: { label: [`org.hackstream.test=${suffix}`] } });
    await Promise.all(mine.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await docker.getNetwork(opts.name!).remove().catch(() => {});
    await removeSessionNetworkRules(opts);
  });

  it('creates a bridge without inter-container traffic, on the named Linux bridge, IPv4 only', async () => {
    const info = (await docker.getNetwork(network.id).inspect()) as Docker.NetworkInspectInfo;
    assert.equal(info.Driver, 'bridge');
    assert.equal(info.Options?.['com.docker.network.bridge.enable_icc'], 'false');
    assert.equal(info.Options?.['com.docker.network.bridge.name'], opts.bridge);
    assert.equal(info.EnableIPv6, false);
    assert.ok(network.gateway && network.subnet, 'the network reports its subnet and gateway');
  });

  it('the host reaches a listener inside a session container (the gateway path)', async () => {
    assert.equal(await hostCanReach(b.ip, LISTEN_PORT), 'hello from b\n');
  });

  it("a session cannot reach another session: its private range's REJECT rule refuses it", async () => {
    const { forward } = chainNames(opts.bridge!);
    await assertRejectedBy(forward, `-d ${blockedCidrOf(b.ip)} ${TCP_RESET}`, a.id, b.ip, LISTEN_PORT);
  });

  it("a session cannot reach host services through the bridge gateway or the host address: the input chain's REJECT refuses them", async () => {
    assert.equal(await hostCanReach(hostIp, hostPort), 'host service\n', 'control: the host service answers on the host address');
    const { input } = chainNames(opts.bridge!);
    for (const host of [network.gateway!, hostIp]) {
      for (const port of [5432, 6379, hostPort]) await assertRejectedBy(input, TCP_RESET, a.id, host, port);
    }
  });

  it("a session cannot reach the metadata address: the link-local range's REJECT rule refuses it", async () => {
    const { forward } = chainNames(opts.bridge!);
    await assertRejectedBy(forward, `-d 169.254.0.0/16 ${TCP_RESET}`, a.id, '169.254.169.254', 80);
  });

  it("resolves names with Docker's DNS and reaches the public internet (the Debian mirror)", async () => {
    const mirror = mirrorHost();
    const lookup = await execInContainer(docker, a.id, ['getent', 'hosts', mirror], { timeoutMs: 15_000 });
    assert.equal(lookup.exitCode, 0, `getent hosts ${mirror}: ${lookup.output}`);
    assert.match(lookup.output, /^\d+\.\d+\.\d+\.\d+\s/);
    assert.equal(await canReach(a.id, mirror, 80), true, `${mirror}:80 is reachable`);
  });

  it('is idempotent: ensuring again keeps the same rules and one jump each', async () => {
    const { forward, input } = chainNames(opts.bridge!);
    const before = [await listChainRules(forward), await listChainRules(input)];
    assert.ok(before[0]!.length >= 10 && before[1]!.length >= 2, 'both chains are filled');
    await ensureSessionNetwork(docker, opts, log);
    await ensureSessionNetwork(docker, opts, log);
    assert.deepEqual([await listChainRules(forward), await listChainRules(input)], before);
    assert.equal(await jumpCount('DOCKER-USER', forward), 1);
    assert.equal(await jumpCount('INPUT', input), 1);
  });

  it('the allow-list lets chosen private addresses through, and withdrawing it blocks them again', async () => {
    const allowed = { ...opts, allow: [`${network.gateway}/32`, '169.254.169.254/32'] };
    await ensureSessionNetwork(docker, allowed, log);
    try {
      assert.equal(await canReach(a.id, network.gateway!, hostPort), true, 'the host service through the gateway');
      if ((await hostCanReach('169.254.169.254', 80)) !== null) assert.equal(await canReach(a.id, '169.254.169.254', 80), true);
      assert.equal(await canReach(a.id, hostIp, hostPort), false, 'an address not on the list stays blocked');
      assert.equal(await canReach(a.id, b.ip, LISTEN_PORT), false, 'other sessions stay blocked');
    } finally {
      await ensureSessionNetwork(docker, opts, log);
    }
    assert.equal(await canReach(a.id, network.gateway!, hostPort), false);
  });

  it('rejects a bad allow-list entry and a bridge name longer than 15 characters', async () => {
    await assert.rejects(ensureSessionNetwork(docker, { ...opts, allow: ['10.0.0.0/33'] }, log), NetworkIsolationError);
    await assert.rejects(ensureSessionNetwork(docker, { ...opts, bridge: 'a-very-long-bridge0' }, log), NetworkIsolationError);
  });

  it('replaces an unused network of the same name that lets containers talk, and refuses one in use', async () => {
    const other: NetworkOptions = { name: `hs-test-icc-${suffix}`, bridge: `hsti${suffix}` };
    await docker.createNetwork({ Name: other.name!, Driver: 'bridge', Options: { 'com.docker.network.bridge.name': other.bridge! } });
    try {
      const fixed = await ensureSessionNetwork(docker, other, log);
      const info = (await docker.getNetwork(fixed.id).inspect()) as Docker.NetworkInspectInfo;
      assert.equal(info.Options?.['com.docker.network.bridge.enable_icc'], 'false');

      await docker.getNetwork(fixed.id).remove();
      await docker.createNetwork({ Name: other.name!, Driver: 'bridge', Options: { 'com.docker.network.bridge.name': other.bridge! } });
      const c = await docker.createContainer({ Image: await pickImage(), Cmd: ['true'], Labels: { 'org.hackstream.test': suffix }, HostConfig: { NetworkMode: other.name! } });
      await assert.rejects(ensureSessionNetwork(docker, other, log), (err: Error) => err instanceof NetworkIsolationError && /docker network rm/.test(err.message));
      await c.remove({ force: true });
    } finally {
      await docker.getNetwork(other.name!).remove().catch(() => {});
      await removeSessionNetworkRules(other);
    }
  });

  it('removeSessionNetworkRules removes the chains and their jumps', async () => {
    const scratch: NetworkOptions = { name: `hs-test-rm-${suffix}`, bridge: `hstr${suffix}` };
    await ensureSessionNetwork(docker, scratch, log);
    await docker.getNetwork(scratch.name!).remove();
    const { forward, input } = chainNames(scratch.bridge!);
    await removeSessionNetworkRules(scratch);
    await removeSessionNetworkRules(scratch);
    assert.deepEqual(await listChainRules(forward), []);
    assert.equal(await jumpCount('DOCKER-USER', forward), 0);
    assert.equal(await jumpCount('INPUT', input), 0);
  });
});
