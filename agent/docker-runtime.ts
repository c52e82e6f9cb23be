/*
 * The Docker runtime: one hardened container per session (CIS Docker Benchmark 5.x), on the
 * sessions' network, ready when its entrypoint prints HACKSTREAM-READY. Containers are found
 * again by their labels (managed + instance); exits come from the engine's event stream.
 */
import type Docker from 'dockerode';
import type { Logger } from '../lib/log.js';
import {
  dockerClient,
  engineUnavailable,
  execInContainer,
  isConnectionError,
  isLocalEngine,
  parseDockerHost,
  pingEngine,
  statusCode,
  type EngineAddress,
} from './docker-engine.js';
import { checkLimits, MB, sessionContainerConfig } from './container-config.js';
import { handOverKey, untilReady } from './container-start.js';
import { NotOwnedError } from './errors.js';
import { ExitWatcher } from './docker-events.js';
import { ensureImage, imageTag } from './image.js';
import { parseXpraActivity, XPRA_ACTIVITY_CMD } from './xpra-info.js';
import { tracedStep } from '../lib/tracing.js';
import { DEFAULT_NETWORK_NAME, ensureSessionNetwork, firewallApplied, NetworkIsolationError, type NetworkOptions } from './network.js';
import {
  LABELS,
  RuntimeUnavailableError,
  type ContainerExit,
  type ProgressFn,
  type RuntimeContainer,
  type SessionActivity,
  type SessionLimits,
  type SessionRuntime,
  type SessionSpec,
} from '../core/sessions/runtime.js';

export interface RuntimeStatus {
  engineReachable: boolean;
  image: { tag: string; present: boolean };
  network: { name: string; applied: boolean };
  firewall: { applied: boolean };
  ready: boolean;
  reason: string | null;
}

export interface DockerRuntimeOptions {
  logger: Logger;
  /** HACKSTREAM_DOCKER_HOST: unix:///path, tcp://host:port or a socket path; default the local socket. */
  dockerHost?: string;
  /** Names this control plane on its containers' labels. */
  instanceId: string;
  /** The session image; default imageTag() (built by prepare() when missing). */
  image?: string;
  network: NetworkOptions;
  /** The port xpra serves TLS on inside the container. Default 14500. */
  xpraPort?: number;
  /** create() fails when the container is not ready within this time. Default 60 s. */
  readyTimeoutMs?: number;
}

/** A live container's share of the host (the agent checks its limits against these). */
export interface ContainerUsage {
  containerId: string;
  /** The session label ('' when missing): lets the ledger tell a reservation's container when it shows. */
  sessionId: string;
  memoryMb: number;
}

export const DEFAULT_XPRA_PORT = 14500;
const DEFAULT_READY_TIMEOUT_MS = 60_000;
/** Engine calls other than create's wait and exec get this long before we call the engine hung. */
const CALL_TIMEOUT_MS = 30_000;

export class DockerRuntime implements SessionRuntime {
  readonly docker: Docker;
  private readonly address: EngineAddress;
  private readonly log: Logger;
  private readonly networkName: string;
  private readonly xpraPort: number;
  private readonly readyTimeoutMs: number;
  /** Resolved at first use (imageTag() hashes the image folder) or by prepare(). */
  private image: string | null;
  private readonly exits: ExitWatcher;
  private lastPing = 0;
  private ping: Promise<void> | null = null;

  constructor(private readonly opts: DockerRuntimeOptions) {
    if (!opts.instanceId) throw new TypeError('DockerRuntime needs an instanceId');
    this.address = parseDockerHost(opts.dockerHost);
    this.docker = dockerClient(this.address);
    this.log = opts.logger.child({ runtime: 'docker' });
    this.networkName = opts.network.name ?? DEFAULT_NETWORK_NAME;
    this.xpraPort = opts.xpraPort ?? DEFAULT_XPRA_PORT;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    this.image = opts.image ?? null;
    this.exits = new ExitWatcher(this.docker, this.ownLabels(), this.log);
  }

  async prepare(progress?: ProgressFn, signal?: AbortSignal): Promise<void> {
    await this.reachable(true);
    if (!isLocalEngine(this.address)) {
      throw new NetworkIsolationError(
        `the sessions' firewall is applied with this machine's iptables, but the engine at ${this.address.display} is remote: ` +
          'run HackStream on the engine host (sessions are not run without network isolation)',
      );
    }
    // A build takes minutes: no deadline here (the build reports progress instead).
    this.image = await this.call(
      () =>
        ensureImage(this.docker, {
          logger: this.log,
          ...(progress ? { progress } : {}),
          ...(signal ? { signal } : {}),
          ...(this.opts.image ? { image: this.opts.image } : {}),
        }),
      Infinity,
    );
    await this.call(() => ensureSessionNetwork(this.docker, this.opts.network, this.log));
  }

  /** `profileSource`: the agent's mounted profile volume for a persist session (agent/profiles.ts). */
  async create(spec: SessionSpec, opts: { signal?: AbortSignal; profileSource?: string } = {}): Promise<RuntimeContainer> {
    opts.signal?.throwIfAborted();
    const config = this.containerConfig(spec, opts.profileSource);
    const t0 = Date.now();
    const log = this.log.child({ sessionId: spec.sessionId });
    const container = await tracedStep('container.create', () => this.call(() => this.docker.createContainer({ ...config, abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) }))).catch((err: unknown) => {
      // No such image or network: say what sets them up.
      if (statusCode(err) === 404) throw new Error(`${(err as Error).message.trim()} (prepare() builds the image and creates the network)`, { cause: err });
      throw err;
    });
    let stdin: NodeJS.ReadWriteStream | undefined;
    try {
      // Attached before start, so the entrypoint finds the key waiting (see handOverKey).
      stdin = await this.call(() => container.attach({ stream: true, stdin: true, hijack: true }));
      // After the hand-over, the attach connection's fate does not matter (readiness decides).
      stdin.on('error', () => undefined);
      await tracedStep('container.start', () => this.call(() => container.start()));
      await this.call(() => handOverKey(stdin!, spec.tls.keyPem));
      await tracedStep('container.wait_ready', () => this.waitReady(container, opts.signal));
      const info = await this.call(() => container.inspect());
      const host = info.NetworkSettings.Networks[this.networkName]?.IPAddress;
      if (!host) throw new Error(`the container has no address on network ${this.networkName}`);
      log.info({ containerId: container.id, ms: Date.now() - t0 }, 'session container ready');
      return {
        containerId: container.id,
        sessionId: spec.sessionId,
        userId: spec.userId ?? null,
        pooled: spec.pooled ?? false,
        running: true,
        upstream: { host, port: this.xpraPort },
      };
    } catch (err) {
      log.warn({ containerId: container.id, err: (err as Error).message }, 'session container failed to start');
      await this.removeQuietly(container.id);
      throw err;
    } finally {
      (stdin as (NodeJS.ReadWriteStream & { destroy?: () => void }) | undefined)?.destroy?.();
    }
  }

  async allowToken(containerId: string, tokenHash: string, expiresAt: Date): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(tokenHash)) throw new TypeError('tokenHash must be 64 lowercase hex characters');
    const expires = Math.floor(expiresAt.getTime() / 1000);
    if (!Number.isFinite(expires)) throw new TypeError('expiresAt is not a valid date');
    await this.owned(containerId);
    await this.exec(containerId, ['/usr/local/bin/hs-token', 'add', tokenHash, String(expires)]);
  }

  /**
   * Applies `limits` live (memory, swap, CPU, pids) and opens `url` in the session's Firefox.
   * Labels are immutable in Docker, so `userId` is not written to the container: the manager
   * records the owner, and list() keeps reporting a claimed pool container as pooled/unowned.
   */
  async claim(containerId: string, userId: string, url?: string, limits?: SessionLimits): Promise<void> {
    await this.owned(containerId);
    if (limits) {
      checkLimits(limits);
      await this.call(() =>
        this.docker.getContainer(containerId).update({
          Memory: limits.memoryMb * MB,
          MemorySwap: limits.memoryMb * MB,
          NanoCpus: Math.round(limits.cpus * 1e9),
          PidsLimit: limits.pids,
        }),
      );
    }
    if (url !== undefined) {
      const protocol = URL.canParse(url) ? new URL(url).protocol : '';
      if (protocol !== 'http:' && protocol !== 'https:') throw new TypeError('only http and https URLs can be opened');
      await this.exec(containerId, ['/usr/local/bin/hs-open', url]);
    }
    this.log.info({ containerId, userId, limits }, 'pool container claimed');
  }

  /** The session's attached xpra clients and the seconds since their latest input. */
  async activity(containerId: string): Promise<SessionActivity> {
    const info = await this.owned(containerId);
    if (!info?.State.Running) throw new Error('the session container is not running');
    const r = await this.call(() => execInContainer(this.docker, containerId, XPRA_ACTIVITY_CMD, { user: '1000:1000', timeoutMs: 10_000 }));
    if (r.exitCode !== 0) throw new Error(`xpra info exited with code ${r.exitCode}`);
    return parseXpraActivity(r.output);
  }

  async remove(containerId: string): Promise<void> {
    if (!(await this.owned(containerId, true))) return;
    await this.call(() => this.forceRemove(containerId));
  }

  async list(): Promise<RuntimeContainer[]> {
    const found = await this.call(() =>
      this.docker.listContainers({ all: true, filters: { label: this.ownLabels() }, abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) }),
    );
    return found.map((c) => {
      const running = c.State === 'running';
      const ip = c.NetworkSettings?.Networks?.[this.networkName]?.IPAddress;
      return {
        containerId: c.Id,
        sessionId: c.Labels[LABELS.session] ?? '',
        userId: c.Labels[LABELS.user] ?? null,
        pooled: c.Labels[LABELS.pool] === '1',
        running,
        upstream: running && ip ? { host: ip, port: this.xpraPort } : null,
      };
    });
  }

  /** Memory limits of this instance's live (created or running) containers. */
  async usage(): Promise<ContainerUsage[]> {
    const found = await this.call(() =>
      this.docker.listContainers({ all: true, filters: { label: this.ownLabels() }, abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) }),
    );
    const live = found.filter((c) => c.State !== 'exited' && c.State !== 'dead');
    return Promise.all(
      live.map(async (c) => {
        const info = await this.call(() => this.docker.getContainer(c.Id).inspect({ abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) })).catch((err: unknown) => {
          if (statusCode(err) === 404) return null;
          throw err;
        });
        return { containerId: c.Id, sessionId: c.Labels[LABELS.session] ?? '', memoryMb: Math.ceil((info?.HostConfig.Memory ?? 0) / MB) };
      }),
    );
  }

  /** Whether a session can start now: engine, image and network + firewall (never throws). */
  async status(): Promise<RuntimeStatus> {
    const image = this.image ?? this.opts.image ?? imageTag();
    const networkName = this.networkName;
    const down = (reason: string): RuntimeStatus => ({ engineReachable: false, image: { tag: image, present: false }, network: { name: networkName, applied: false }, firewall: { applied: false }, ready: false, reason });
    try {
      await this.reachable(true);
    } catch (err) {
      return down((err as Error).message);
    }
    const present = await this.docker.getImage(image).inspect().then(() => true, () => false);
    const applied = await this.docker.getNetwork(networkName).inspect().then(() => true, () => false);
    const firewall = await firewallApplied(this.opts.network).catch(() => false);
    const reason = !present
      ? `the session image ${image} is missing (prepare builds it)`
      : !applied
        ? `the sessions network ${networkName} is missing (prepare creates it)`
        : !firewall
          ? "the sessions' firewall is not applied (prepare applies it)"
          : null;
    return { engineReachable: true, image: { tag: image, present }, network: { name: networkName, applied }, firewall: { applied: firewall }, ready: reason === null, reason };
  }

  onExit(listener: (exit: ContainerExit) => void): () => void {
    return this.exits.add(listener);
  }

  async close(): Promise<void> {
    this.exits.close();
  }

  /** The container's create options (exported through the runtime for tests and audits). */
  containerConfig(spec: SessionSpec, profileSource?: string): Docker.ContainerCreateOptions {
    return sessionContainerConfig(spec, {
      image: (this.image ??= imageTag()),
      networkName: this.networkName,
      xpraPort: this.xpraPort,
      instanceId: this.opts.instanceId,
      ...(profileSource !== undefined ? { profileSource } : {}),
    });
  }

  /** Follows the container's output until HACKSTREAM-READY, a failure, its exit, the timeout or an abort. */
  private async waitReady(container: Docker.Container, signal?: AbortSignal): Promise<void> {
    const stream = await this.call(() => container.logs({ follow: true, stdout: true, stderr: true }));
    await untilReady(container, stream, {
      timeoutMs: this.readyTimeoutMs,
      ...(signal ? { signal } : {}),
      streamError: (err) => (isConnectionError(err) ? engineUnavailable(this.address, err) : err),
    });
  }

  private async exec(containerId: string, cmd: string[]): Promise<void> {
    const r = await this.call(() => execInContainer(this.docker, containerId, cmd, { user: '1000:1000' }));
    if (r.exitCode !== 0) {
      throw new Error(`${cmd[0]} exited with code ${r.exitCode}: ${r.output.trim().split('\n').slice(-5).join(' | ')}`);
    }
  }

  /** Inspects a container and checks it is one of ours; null when it is gone (with `missingOk`). */
  private async owned(containerId: string, missingOk = false): Promise<Docker.ContainerInspectInfo | null> {
    try {
      const info = await this.call(() => this.docker.getContainer(containerId).inspect({ abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) }));
      const labels = info.Config.Labels ?? {};
      if (labels[LABELS.managed] !== '1' || labels[LABELS.instance] !== this.opts.instanceId) throw new NotOwnedError(containerId, this.opts.instanceId);
      return info;
    } catch (err) {
      if (statusCode(err) === 404) {
        if (missingOk) return null;
        throw new NotOwnedError(containerId, this.opts.instanceId);
      }
      throw err;
    }
  }

  private async forceRemove(containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).remove({ force: true, v: true });
    } catch (err) {
      const status = statusCode(err);
      if (status === 404) return;
      if (status !== 409) throw err;
      // Removal already in progress (a concurrent remove): wait for it to finish.
      for (let i = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          await this.docker.getContainer(containerId).inspect();
        } catch (e) {
          if (statusCode(e) === 404) return;
          throw e;
        }
      }
      throw err;
    }
  }

  private async removeQuietly(containerId: string): Promise<void> {
    await this.forceRemove(containerId).catch((err: unknown) =>
      this.log.error({ containerId, err: (err as Error).message }, 'could not remove a failed session container'),
    );
  }

  private ownLabels(): string[] {
    return [`${LABELS.managed}=1`, `${LABELS.instance}=${this.opts.instanceId}`];
  }

  /** Pings the engine (shared while in flight, trusted for 2 s) so a dead engine fails fast. */
  private async reachable(force = false): Promise<void> {
    if (!force && Date.now() - this.lastPing < 2_000) return;
    this.ping ??= pingEngine(this.address).finally(() => {
      this.ping = null;
    });
    await this.ping;
    this.lastPing = Date.now();
  }

  /**
   * Runs one engine operation: fails fast when the engine is gone, gives up when it hangs
   * (`timeoutMs`), and turns transport errors into RuntimeUnavailableError.
   */
  private async call<T>(fn: () => Promise<T>, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
    await this.reachable();
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => reject(new RuntimeUnavailableError(`the Docker engine at ${this.address.display} did not answer within ${timeoutMs} ms`)), timeoutMs);
      }
    });
    try {
      return await Promise.race([fn(), hung]);
    } catch (err) {
      if (err instanceof RuntimeUnavailableError) {
        this.lastPing = 0;
        throw err;
      }
      if (isConnectionError(err)) {
        this.lastPing = 0;
        throw engineUnavailable(this.address, err);
      }
      if (err instanceof Error && err.name === 'TimeoutError') {
        this.lastPing = 0;
        throw new RuntimeUnavailableError(`the Docker engine at ${this.address.display} did not answer in time`, { cause: err });
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}
