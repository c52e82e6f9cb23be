/*
 * The control plane's SessionRuntime: every call goes to the agent (the privileged process)
 * over its Unix socket (lib/agent-protocol.ts). One connection, reconnected with backoff;
 * every answer is checked against the protocol's schemas; a dead socket or an agent without
 * an engine is RuntimeUnavailableError, a refused limit AgentLimitError (the manager's 503
 * CAPACITY_REACHED), a failed start AgentStartError.
 */
import net from 'node:net';
import type { Logger } from '../../lib/log.js';
import { readLines } from '../../lib/ndjson.js';
import { timeAgentCall } from '../metrics/registry.js';
import {
  AGENT_PROTOCOL_VERSION,
  MAX_RESPONSE_LINE_BYTES,
  MAX_TOKEN_TTL_MS,
  RESULTS,
  agentMessageSchema,
  describeIssues,
  type AgentErrorCode,
  type AgentLimits,
  type AgentMethod,
  type AgentParams,
  type AgentResults,
  type AgentStatus,
  type ProfileUsage,
} from '../../lib/agent-protocol.js';
import {
  RuntimeCallError,
  RuntimeUnavailableError,
  type ContainerExit,
  type ProgressFn,
  type RuntimeContainer,
  type SessionActivity,
  type SessionLimits,
  type SessionRuntime,
  type SessionSpec,
} from './runtime.js';
import { currentTraceCarrier, SpanKind, tracedStep } from '../../lib/tracing.js';

/** The agent answered with an error code (a RuntimeCallError of the kind the code means). */
export class AgentCallError extends RuntimeCallError {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(code === 'LIMIT_EXCEEDED' ? 'limit' : code === 'START_FAILED' ? 'start' : 'other', message);
    this.name = 'AgentCallError';
  }
}

/** LIMIT_EXCEEDED: the agent's capacity or per-container limits (map to 503 CAPACITY_REACHED). */
export class AgentLimitError extends AgentCallError {
  constructor(message: string) {
    super('LIMIT_EXCEEDED', message);
    this.name = 'AgentLimitError';
  }
}

/** START_FAILED: the session container did not become ready (a failed start). */
export class AgentStartError extends AgentCallError {
  constructor(message: string) {
    super('START_FAILED', message);
    this.name = 'AgentStartError';
  }
}

export interface AgentRuntimeOptions {
  socketPath: string;
  logger: Logger;
  /** Calls other than create and prepare. Default 30 s. */
  callTimeoutMs?: number;
}

const DEFAULT_CALL_TIMEOUT_MS = 30_000;
/** create waits for the agent's ready timeout (from hello) plus this. */
const CREATE_MARGIN_MS = 30_000;
const PREPARE_TIMEOUT_MS = 30 * 60_000;
const CONNECT_TIMEOUT_MS = 3_000;
const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

interface Pending {
  method: AgentMethod;
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
  progress?: ProgressFn;
}

export class AgentRuntime implements SessionRuntime {
  private socket: net.Socket | null = null;
  private connecting: Promise<net.Socket> | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly exitListeners = new Set<(exit: ContainerExit) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private nextId = 1;
  private backoffMs = MIN_BACKOFF_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private everConnected = false;
  private closed = false;
  private limits: AgentLimits | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: AgentRuntimeOptions) {
    this.log = opts.logger.child({ runtime: 'agent' });
    // Connect now so exit events flow before the first call; failures retry with backoff.
    this.connect().catch(() => this.scheduleReconnect());
  }

  async prepare(progress?: ProgressFn): Promise<void> {
    await this.call('prepare', {}, PREPARE_TIMEOUT_MS, progress);
  }

  async create(spec: SessionSpec, opts: { signal?: AbortSignal } = {}): Promise<RuntimeContainer> {
    opts.signal?.throwIfAborted();
    await this.connect();
    const timeout = (this.limits?.readyTimeoutMs ?? 60_000) + CREATE_MARGIN_MS;
    const call = this.call('create', spec, timeout);
    if (!opts.signal) return call;
    const signal = opts.signal;
    // The protocol has no cancel: a container that comes up after the caller gave up is removed.
    return new Promise<RuntimeContainer>((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        void call.then((c) => this.remove(c.containerId)).catch(() => undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  async allowToken(containerId: string, tokenHash: string, expiresAt: Date): Promise<void> {
    // The agent refuses tokens that live longer than this; never ask for more.
    const at = Math.min(expiresAt.getTime(), Date.now() + MAX_TOKEN_TTL_MS);
    await this.call('allowToken', { containerId, tokenHash, expiresAt: at });
  }

  async claim(containerId: string, userId: string, url?: string, limits?: SessionLimits): Promise<void> {
    await this.call('claim', { containerId, userId, ...(url !== undefined ? { url } : {}), ...(limits ? { limits } : {}) });
  }

  async remove(containerId: string): Promise<void> {
    await this.call('remove', { containerId });
  }

  async list(): Promise<RuntimeContainer[]> {
    return (await this.call('list', {})).containers;
  }

  /** Creates (or grows) and mounts the user's persistent profile volume (core/profiles). */
  profileEnsure(userId: string, sizeMb: number): Promise<AgentResults['profileEnsure']> {
    // mkfs, e2fsck and resize2fs of a large volume take a while.
    return this.call('profileEnsure', { userId, sizeMb }, PREPARE_TIMEOUT_MS);
  }

  async profileUsage(userId: string): Promise<ProfileUsage | null> {
    return (await this.call('profileUsage', { userId })).usage;
  }

  async profileDelete(userId: string): Promise<boolean> {
    return (await this.call('profileDelete', { userId })).deleted;
  }

  /** The session's xpra clients and their last input (the reaper's input idleness). */
  activity(containerId: string): Promise<SessionActivity> {
    return this.call('activity', { containerId });
  }

  /** Engine, image, network and firewall as the agent sees them (for /ready). */
  status(): Promise<AgentStatus> {
    return this.call('status', {});
  }

  onExit(listener: (exit: ContainerExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** Called each time the connection comes back after a loss (re-run reconciliation then). */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.socket?.destroy();
    this.failAll(new RuntimeUnavailableError('the agent runtime is closed'));
  }

  /** One request; resolves with its schema-checked result. Inside a trace, a client span whose context the agent continues. */
  private call<M extends AgentMethod>(method: M, params: AgentParams[M], timeoutMs = this.opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS, progress?: ProgressFn): Promise<AgentResults[M]> {
    return tracedStep(`agent.rpc ${method}`, () => this.exchange(method, params, timeoutMs, progress), { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'hackstream-agent', 'rpc.method': method } });
  }

  private async exchange<M extends AgentMethod>(method: M, params: AgentParams[M], timeoutMs: number, progress?: ProgressFn): Promise<AgentResults[M]> {
    const socket = await this.connect();
    const id = this.nextId++;
    const raw = await timeAgentCall(method, new Promise<unknown>((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            this.pending.delete(id);
            reject(new RuntimeUnavailableError(`the agent did not answer ${method} within ${timeoutMs} ms`));
          }, timeoutMs)
        : undefined;
      this.pending.set(id, { method, resolve, reject, timer, ...(progress ? { progress } : {}) });
      const trace = currentTraceCarrier();
      socket.write(`${JSON.stringify({ v: AGENT_PROTOCOL_VERSION, id, method, params, ...(trace ? { trace } : {}) })}\n`);
    }));
    const result = RESULTS[method].safeParse(raw);
    if (!result.success) throw new AgentCallError('INTERNAL', `the agent's ${method} result is malformed: ${describeIssues(result.error)}`);
    return result.data as AgentResults[M];
  }

  /** The live connection, or a new one (said hello) within CONNECT_TIMEOUT_MS. */
  private connect(): Promise<net.Socket> {
    if (this.closed) return Promise.reject(new RuntimeUnavailableError('the agent runtime is closed'));
    if (this.socket) return Promise.resolve(this.socket);
    this.connecting ??= this.open().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private open(): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(this.opts.socketPath);
      const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), CONNECT_TIMEOUT_MS);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new RuntimeUnavailableError(`the session agent does not answer at ${this.opts.socketPath} (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err }));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        this.attach(socket);
        this.hello().then(
          () => resolve(socket),
          (err: unknown) => {
            socket.destroy();
            reject(err instanceof RuntimeUnavailableError ? err : new RuntimeUnavailableError(`the session agent refused hello: ${(err as Error).message}`, { cause: err }));
          },
        );
      });
    });
  }

  private async hello(): Promise<void> {
    const id = this.nextId++;
    const socket = this.socket;
    if (!socket) throw new RuntimeUnavailableError('the agent connection closed');
    const raw = await new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RuntimeUnavailableError('the agent did not answer hello in time')), CONNECT_TIMEOUT_MS);
      this.pending.set(id, { method: 'hello', resolve, reject, timer });
      socket.write(`${JSON.stringify({ v: AGENT_PROTOCOL_VERSION, id, method: 'hello', params: {} })}\n`);
    });
    const hello = RESULTS.hello.parse(raw);
    this.limits = hello.limits;
    this.backoffMs = MIN_BACKOFF_MS;
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.log.info({ agentVersion: hello.agentVersion, limits: hello.limits }, reconnected ? 'agent connection restored' : 'agent connected');
    if (reconnected) for (const l of [...this.reconnectListeners]) isolate(() => l(), this.log, 'agent reconnect listener threw');
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    readLines(socket, (value) => this.onMessage(value), {
      maxLine: MAX_RESPONSE_LINE_BYTES,
      onBadLine: (reason) => this.log.error({ reason }, reason === 'line too long' ? 'agent sent an oversized line; reconnecting' : 'agent sent a line that is not JSON'),
    });
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'agent connection error'));
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.failAll(new RuntimeUnavailableError('the connection to the session agent was lost'));
      if (!this.closed) {
        this.log.warn('agent connection lost; reconnecting');
        this.scheduleReconnect();
      }
    });
  }

  private onMessage(value: unknown): void {
    const parsed = agentMessageSchema.safeParse(value);
    if (!parsed.success) {
      this.log.error({ problems: describeIssues(parsed.error) }, 'agent sent a malformed message');
      return;
    }
    const m = parsed.data;
    if ('event' in m) {
      if (m.event === 'exit') for (const l of [...this.exitListeners]) isolate(() => l(m.data), this.log, 'container exit listener threw');
      else this.pending.get(m.id)?.progress?.(m.line);
      return;
    }
    if (m.id === null) {
      if (!m.ok) this.log.error({ code: m.error.code, err: m.error.message }, 'agent refused a request it could not attribute');
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.result);
    else p.reject(toError(m.error.code, m.error.message));
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect().catch(() => this.scheduleReconnect());
    }, delay);
    this.retryTimer.unref();
  }
}

function toError(code: AgentErrorCode, message: string): Error {
  if (code === 'RUNTIME_UNAVAILABLE') return new RuntimeUnavailableError(message);
  if (code === 'LIMIT_EXCEEDED') return new AgentLimitError(message);
  if (code === 'START_FAILED') return new AgentStartError(message);
  return new AgentCallError(code, message);
}

function isolate(fn: () => void, log: Logger, msg: string): void {
  try {
    fn();
  } catch (err) {
    log.error({ err: (err as Error).message }, msg);
  }
}
