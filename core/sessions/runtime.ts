/*
 * What the sessions core needs from a container runtime, and the runtime-neutral errors it
 * understands. The agent's RPC client (agent-runtime.ts, in front of agent/docker-runtime.ts)
 * implements it today; a Kubernetes runtime can implement it later. Nothing above this file
 * knows which runtime runs the containers.
 */

/** Per-session switches the image applies (xpra options and Firefox enterprise policies). */
export interface SessionPolicy {
  clipboard: boolean;
  fileTransfer: boolean;
  printing: boolean;
  audio: boolean;
  webcam: boolean;
  /** Firefox may save downloads (to the session's tmpfs). */
  downloads: boolean;
  /** Firefox may open file:// URLs. */
  fileUrls: boolean;
  /** The largest download sent to the client (MB); the image's default (100) when absent. */
  downloadMaxMb?: number;
}

export interface SessionLimits {
  memoryMb: number;
  /** CPU cores, e.g. 1 or 0.5. */
  cpus: number;
  pids: number;
}

export interface SessionSpec {
  /** The session id (uuid); also the first label of the session's hostname. */
  sessionId: string;
  /** Owner; absent for a pool container until it is claimed. */
  userId?: string;
  limits: SessionLimits;
  policy: SessionPolicy;
  /** PEM cert + key for `<sessionId>.<sessionDomain>`, served by xpra. */
  tls: { certPem: string; keyPem: string };
  /** Opened in Firefox at start; none → the blank start page. */
  url?: string;
  /** A pre-warmed pool container (labelled so, owner unset). */
  pooled?: boolean;
  /** "persist": the owner's persistent profile volume is Firefox's profile (docs/profiles.md). */
  profile?: 'persist';
}

/** Labels every HackStream container carries (names used by reconciliation and tests). */
export const LABELS = {
  /** "1" on every container HackStream creates. */
  managed: 'org.hackstream.managed',
  /** The control-plane instance that owns it (config instanceId). */
  instance: 'org.hackstream.instance',
  session: 'org.hackstream.session',
  user: 'org.hackstream.user',
  /** "1" for a pool container not yet claimed. */
  pool: 'org.hackstream.pool',
} as const;

export interface RuntimeContainer {
  containerId: string;
  sessionId: string;
  userId: string | null;
  pooled: boolean;
  running: boolean;
  /** Where the gateway sends the session's raw TLS bytes (container IP, xpra port). */
  upstream: { host: string; port: number } | null;
}

export interface ContainerExit {
  containerId: string;
  sessionId: string;
  exitCode: number | null;
  /** The kernel's OOM killer ended it (memory limit reached). */
  oomKilled: boolean;
}

export type ProgressFn = (line: string) => void;

/** A session's attached clients as its xpra server sees them (the reaper's input idleness). */
export interface SessionActivity {
  clients: number;
  /** Seconds since the latest keyboard or pointer input of any attached client; null with none attached. */
  idleSeconds: number | null;
  /** Connect tokens the session's xpra has accepted since it started (each one once). */
  tokensSpent: number;
}

export interface SessionRuntime {
  /**
   * Checks the engine, builds the image when it is missing (reporting progress) and sets up
   * the sessions' network. Throws RuntimeUnavailableError when no engine answers.
   */
  prepare(progress?: ProgressFn, signal?: AbortSignal): Promise<void>;
  /** Creates and starts a container and resolves when xpra is up and Firefox's window mapped. */
  create(spec: SessionSpec, opts?: { signal?: AbortSignal }): Promise<RuntimeContainer>;
  /**
   * Lets one xpra connection in with the token whose SHA-256 hex is `tokenHash` until
   * `expiresAt` (single use: the token is spent by the first successful login).
   */
  allowToken(containerId: string, tokenHash: string, expiresAt: Date): Promise<void>;
  /**
   * Hands a pool container to `userId`: applies the user's `limits` (a live update of the
   * container's memory, CPU and pids limits) and opens `url` (if any) in its Firefox.
   * Labels cannot change after creation, so the owner is recorded by the manager, not a label.
   */
  claim(containerId: string, userId: string, url?: string, limits?: SessionLimits): Promise<void>;
  /** Stops and removes the container; resolves quietly when it is already gone. */
  remove(containerId: string): Promise<void>;
  /** Every container this instance owns (running or not). */
  list(): Promise<RuntimeContainer[]>;
  /**
   * Whether a session could start now (engine, image, network and firewall), with the reason
   * for an operator when not. Optional: a runtime without it is taken as able.
   */
  status?(): Promise<{ ready: boolean; reason: string | null }>;
  /**
   * The session's attached clients and their last input, from xpra. Optional: without it the
   * reaper times out only sessions with no client attached.
   */
  activity?(containerId: string): Promise<SessionActivity>;
  /** Called when one of this instance's containers exits (crash, OOM, stop). */
  onExit(listener: (exit: ContainerExit) => void): () => void;
  close(): Promise<void>;
}

/** No container engine answers: the API turns this into 503 RUNTIME_UNAVAILABLE. */
export class RuntimeUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RuntimeUnavailableError';
  }
}

/**
 * The runtime answered but refused or failed the call. `limit`: the host's own limits refused
 * it (the API's 503 CAPACITY_REACHED); `start`: the session did not come up; `other`: anything else.
 */
export class RuntimeCallError extends Error {
  constructor(
    readonly kind: 'limit' | 'start' | 'other',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RuntimeCallError';
  }
}
