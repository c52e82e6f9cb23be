/*
 * The sessions' network: a user-defined Docker bridge on which session containers cannot reach
 * each other (enable_icc=false), the host, private or link-local addresses (iptables), while the
 * public internet and Docker's embedded DNS keep working. The host still reaches the containers
 * (the gateway pipes xpra traffic to them); their replies pass as ESTABLISHED.
 *
 * The rules live in two chains of our own per bridge, flushed and refilled on every call, jumped
 * to from DOCKER-USER (forwarded traffic) and INPUT (traffic for the host itself), so restarts
 * never stack rules. They act on the machine this process runs on: the engine must be local.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import type Docker from 'dockerode';
import type { Logger } from '../lib/log.js';
import { LABELS } from '../core/sessions/runtime.js';

export interface NetworkOptions {
  /** Docker network name. Default 'hackstream-sessions'. */
  name?: string;
  /** Linux bridge interface name (≤ 15 characters). Default 'hs-sessions0'. */
  bridge?: string;
  /** IPv4 addresses or CIDRs the sessions may reach despite the private-range blocks. */
  allow?: string[];
}

export interface SessionNetwork {
  id: string;
  name: string;
  bridge: string;
  subnet: string | null;
  gateway: string | null;
}

/** The sessions cannot be isolated (no iptables, no privilege, a foreign network in the way). */
export class NetworkIsolationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NetworkIsolationError';
  }
}

export const DEFAULT_NETWORK_NAME = 'hackstream-sessions';
export const DEFAULT_BRIDGE = 'hs-sessions0';

/** Destinations a session may not open new connections to (RFC 1918, CGNAT, link-local, loopback, …). */
export const BLOCKED_CIDRS = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '0.0.0.0/8',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const;

const ICC_OPTION = 'com.docker.network.bridge.enable_icc';
const BRIDGE_OPTION = 'com.docker.network.bridge.name';

interface Resolved {
  name: string;
  bridge: string;
  allow: string[];
}

function resolve(opts: NetworkOptions): Resolved {
  const name = opts.name ?? DEFAULT_NETWORK_NAME;
  const bridge = opts.bridge ?? DEFAULT_BRIDGE;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(name)) {
    throw new NetworkIsolationError(`invalid sessions network name ${JSON.stringify(name)}`);
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/.test(bridge)) {
    throw new NetworkIsolationError(
      `invalid bridge name ${JSON.stringify(bridge)}: 1–15 characters of letters, digits, '_', '.', '-'`,
    );
  }
  return { name, bridge, allow: (opts.allow ?? []).map(checkCidr) };
}

function checkCidr(entry: string): string {
  const [addr, prefix, extra] = entry.split('/');
  const bits = prefix === undefined ? 32 : Number(prefix);
  if (extra !== undefined || addr === undefined || !isIPv4(addr) || !Number.isInteger(bits) || bits < 0 || bits > 32 || prefix === '') {
    throw new NetworkIsolationError(`network allow-list entry ${JSON.stringify(entry)} is not an IPv4 address or CIDR`);
  }
  return `${addr}/${bits}`;
}

/** The chains this module owns for a bridge (iptables allows 28 characters; ours are ≤ 22). */
export function chainNames(bridge: string): { forward: string; input: string } {
  return { forward: `HS-${bridge}-FWD`, input: `HS-${bridge}-IN` };
}

/**
 * Creates (or verifies) the sessions' bridge network and (re)applies its firewall. Idempotent.
 * Throws NetworkIsolationError when isolation cannot be enforced.
 */
export async function ensureSessionNetwork(docker: Docker, opts: NetworkOptions, logger: Logger): Promise<SessionNetwork> {
  const o = resolve(opts);
  await checkIptables();
  const net = await ensureNetwork(docker, o, logger);
  const dns = await engineDnsServers();
  await applyRules(o, dns);
  logger.info({ network: o.name, bridge: o.bridge, subnet: net.subnet, allow: o.allow, dns }, 'sessions network ready');
  return net;
}

/** Removes this bridge's chains and the jumps to them (tests and teardown). Quiet when absent. */
export async function removeSessionNetworkRules(opts: NetworkOptions): Promise<void> {
  const { bridge } = resolve(opts);
  const chains = chainNames(bridge);
  for (const [parent, chain] of [['DOCKER-USER', chains.forward], ['INPUT', chains.input]] as const) {
    while ((await iptables(['-C', parent, '-i', bridge, '-j', chain], true)).ok) {
      await iptables(['-D', parent, '-i', bridge, '-j', chain]);
    }
    if ((await iptables(['-S', chain], true)).ok) {
      await iptables(['-F', chain]);
      await iptables(['-X', chain]);
    }
  }
}

/** True when both our chains hold rules and are jumped to (for /ready; never throws for a missing chain). */
export async function firewallApplied(opts: NetworkOptions): Promise<boolean> {
  const { bridge } = resolve(opts);
  const chains = chainNames(bridge);
  for (const [parent, chain] of [['DOCKER-USER', chains.forward], ['INPUT', chains.input]] as const) {
    if ((await listChainRules(chain)).length === 0) return false;
    if (!(await iptables(['-C', parent, '-i', bridge, '-j', chain], true)).ok) return false;
  }
  return true;
}

/** The rules of one of our chains as `iptables -S` prints them (tests compare counts). */
export async function listChainRules(chain: string): Promise<string[]> {
  const r = await iptables(['-S', chain], true);
  return r.ok ? r.stdout.split('\n').filter((l) => l.startsWith('-A ')) : [];
}

async function ensureNetwork(docker: Docker, o: Resolved, logger: Logger): Promise<SessionNetwork> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await findNetwork(docker, o.name);
    if (existing) {
      const problem = mismatch(existing, o);
      if (!problem) return describe(existing, o);
      // Stopped containers have no endpoint in the network's inspect: ask for all of them.
      const attached = (await docker.listContainers({ all: true, filters: { network: [existing.Name] } })).length;
      if (attached > 0) {
        throw new NetworkIsolationError(
          `Docker network ${o.name} exists but ${problem}, and ${attached} container(s) use it: ` +
            `remove them and the network (docker network rm ${o.name}) so HackStream can recreate it`,
        );
      }
      logger.warn({ network: o.name, problem }, 'recreating sessions network');
      await docker.getNetwork(existing.Id).remove();
      continue;
    }
    try {
      await docker.createNetwork({
        Name: o.name,
        Driver: 'bridge',
        CheckDuplicate: true,
        EnableIPv6: false,
        Internal: false,
        Attachable: false,
        Labels: { [LABELS.managed]: '1' },
        Options: { [ICC_OPTION]: 'false', [BRIDGE_OPTION]: o.bridge },
      });
    } catch (err) {
      // Another process created it first: verify theirs on the next pass.
      if (statusOf(err) !== 409) throw err;
    }
  }
  throw new NetworkIsolationError(`could not create Docker network ${o.name}`);
}

async function findNetwork(docker: Docker, name: string): Promise<Docker.NetworkInspectInfo | null> {
  const nets = await docker.listNetworks({ filters: { name: [name] } });
  const hit = nets.find((n) => n.Name === name);
  // The list omits attached containers; inspect has them.
  return hit ? ((await docker.getNetwork(hit.Id).inspect()) as Docker.NetworkInspectInfo) : null;
}

function mismatch(n: Docker.NetworkInspectInfo, o: Resolved): string | null {
  if (n.Driver !== 'bridge') return `its driver is ${n.Driver}, not bridge`;
  if (n.Options?.[ICC_OPTION] !== 'false') return `it lets containers reach each other (${ICC_OPTION} is not false)`;
  if (n.Options?.[BRIDGE_OPTION] !== o.bridge) return `its bridge is ${n.Options?.[BRIDGE_OPTION] ?? '(default)'}, not ${o.bridge}`;
  if (n.EnableIPv6) return 'it has IPv6 enabled (the firewall is IPv4 only)';
  return null;
}

function describe(n: Docker.NetworkInspectInfo, o: Resolved): SessionNetwork {
  const cfg = n.IPAM?.Config?.[0];
  return { id: n.Id, name: o.name, bridge: o.bridge, subnet: cfg?.Subnet ?? null, gateway: cfg?.Gateway ?? null };
}

async function applyRules(o: Resolved, dns: string[]): Promise<void> {
  const { forward, input } = chainNames(o.bridge);
  const dnsRules = dns.flatMap((ip) => [
    ['-d', `${ip}/32`, '-p', 'udp', '--dport', '53', '-j', 'RETURN'],
    ['-d', `${ip}/32`, '-p', 'tcp', '--dport', '53', '-j', 'RETURN'],
  ]);
  const head = [
    ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'RETURN'],
    // Docker's embedded DNS forwards queries from the container's namespace to the engine's resolvers.
    ...dnsRules,
    ...o.allow.map((cidr) => ['-d', cidr, '-j', 'RETURN']),
  ];
  await fillChain(forward, [...head, ...BLOCKED_CIDRS.flatMap((cidr) => reject(['-d', cidr]))]);
  // Nothing new from a session reaches the host itself, whatever address it uses.
  await fillChain(input, [...head, ...reject([])]);
  await ensureJump('DOCKER-USER', o.bridge, forward);
  await ensureJump('INPUT', o.bridge, input);
}

/**
 * TCP gets a reset (an immediate "connection refused"); the rest an ICMP error. Not ICMP for TCP:
 * the kernel rate-limits ICMP errors, and a suppressed one costs the client a 1 s SYN retry.
 */
function reject(match: string[]): string[][] {
  return [
    [...match, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'],
    [...match, '-j', 'REJECT'],
  ];
}

async function fillChain(chain: string, rules: string[][]): Promise<void> {
  if (!(await iptables(['-S', chain], true)).ok) await iptables(['-N', chain]);
  await iptables(['-F', chain]);
  for (const rule of rules) await iptables(['-A', chain, ...rule]);
}

async function ensureJump(parent: string, bridge: string, chain: string): Promise<void> {
  if ((await iptables(['-C', parent, '-i', bridge, '-j', chain], true)).ok) return;
  await iptables(['-I', parent, '1', '-i', bridge, '-j', chain]);
}

async function checkIptables(): Promise<void> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new NetworkIsolationError(
      'the sessions firewall needs root to run iptables: start HackStream as root (sessions are not run without network isolation)',
    );
  }
  const r = await iptables(['-S', 'DOCKER-USER'], true);
  if (!r.ok) {
    throw new NetworkIsolationError(
      "Docker's DOCKER-USER iptables chain is missing: dockerd must run with iptables management on " +
        '(no "iptables": false in /etc/docker/daemon.json) on this machine, and the engine must be local',
    );
  }
}

/**
 * The IPv4 resolvers Docker's embedded DNS forwards to: daemon.json "dns", else the host's
 * resolv.conf without loopback entries (systemd-resolved's upstream file when that is all there is).
 */
export async function engineDnsServers(): Promise<string[]> {
  const fromDaemon = await readDaemonDns();
  if (fromDaemon.length) return fromDaemon;
  for (const file of ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const servers = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
      .map((m) => m[1] ?? '')
      .filter((ip) => isIPv4(ip) && !ip.startsWith('127.'));
    if (servers.length) return [...new Set(servers)];
  }
  return [];
}

async function readDaemonDns(): Promise<string[]> {
  try {
    const parsed: unknown = JSON.parse(await readFile('/etc/docker/daemon.json', 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || !('dns' in parsed) || !Array.isArray(parsed.dns)) return [];
    return parsed.dns.filter((ip): ip is string => typeof ip === 'string' && isIPv4(ip));
  } catch {
    return [];
  }
}

interface IptablesResult {
  ok: boolean;
  stdout: string;
}

/** Runs iptables (waiting for the xtables lock dockerd also takes); throws unless `probe`. */
function iptables(args: string[], probe = false): Promise<IptablesResult> {
  return new Promise((resolvePromise, reject) => {
    execFile('iptables', ['-w', '5', ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (!err) return resolvePromise({ ok: true, stdout });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(
          new NetworkIsolationError(
            'iptables is not installed: apt-get install iptables (sessions are not run without network isolation)',
            { cause: err },
          ),
        );
      }
      if (probe) return resolvePromise({ ok: false, stdout });
      reject(new NetworkIsolationError(`iptables ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
    });
  });
}

function statusOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err && typeof err.statusCode === 'number') return err.statusCode;
  return undefined;
}
