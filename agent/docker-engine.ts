/*
 * Talking to a Docker engine: where it is (HACKSTREAM_DOCKER_HOST semantics), whether it answers
 * (a bounded ping, so a missing or hung engine never hangs a caller), running a command in a
 * container, and reading a container's multiplexed output line by line.
 */
import http from 'node:http';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { RuntimeUnavailableError } from '../core/sessions/runtime.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
export const PING_TIMEOUT_MS = 3_000;

export type EngineAddress =
  | { kind: 'socket'; socketPath: string; display: string }
  | { kind: 'tcp'; host: string; port: number; display: string };

/** Parses `unix:///path`, `tcp://host:port` or a socket path; undefined means the local socket. */
export function parseDockerHost(value?: string): EngineAddress {
  const v = value?.trim();
  if (!v) return { kind: 'socket', socketPath: DEFAULT_DOCKER_SOCKET, display: `unix://${DEFAULT_DOCKER_SOCKET}` };
  if (v.startsWith('/')) return { kind: 'socket', socketPath: v, display: `unix://${v}` };
  if (v.startsWith('unix://') && v.length > 'unix://'.length) {
    return { kind: 'socket', socketPath: v.slice('unix://'.length), display: v };
  }
  if (v.startsWith('tcp://')) {
    const u = new URL(v.replace(/^tcp:/, 'http:'));
    const port = Number(u.port || 2375);
    if (u.hostname && (u.pathname === '/' || u.pathname === '')) {
      return { kind: 'tcp', host: u.hostname.replace(/^\[|\]$/g, ''), port, display: `tcp://${u.host}` };
    }
  }
  throw new RuntimeUnavailableError(
    `HACKSTREAM_DOCKER_HOST ${JSON.stringify(v)} is not unix:///path/to/docker.sock, tcp://host:port or a socket path`,
  );
}

/** True when the engine runs on this machine (its iptables are ours to set). */
export function isLocalEngine(addr: EngineAddress): boolean {
  return addr.kind === 'socket' || ['127.0.0.1', 'localhost', '::1'].includes(addr.host);
}

export function dockerClient(addr: EngineAddress): Docker {
  return addr.kind === 'socket'
    ? new Docker({ socketPath: addr.socketPath })
    : new Docker({ host: addr.host, port: addr.port, protocol: 'http' });
}

/** The error every runtime call throws when no engine answers; says how to get one. */
export function engineUnavailable(addr: EngineAddress, cause: unknown): RuntimeUnavailableError {
  const code = errorCode(cause);
  const why =
    code === 'EACCES'
      ? 'permission denied on the socket (run as root or as a member of the docker group)'
      : code === 'ETIMEDOUT'
        ? `no answer within ${PING_TIMEOUT_MS / 1000} s`
        : (code ?? (cause instanceof Error ? cause.message : String(cause)));
  return new RuntimeUnavailableError(
    `No Docker engine answers at ${addr.display} (${why}). Install and start one ` +
      '(apt-get install docker.io, then systemctl start docker or run dockerd), ' +
      'or set HACKSTREAM_DOCKER_HOST to a reachable engine (unix:///path/to/docker.sock or tcp://host:port).',
    { cause },
  );
}

/** GET /_ping with a hard deadline; throws RuntimeUnavailableError. */
export function pingEngine(addr: EngineAddress, timeoutMs = PING_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const target = addr.kind === 'socket' ? { socketPath: addr.socketPath } : { host: addr.host, port: addr.port };
    const req = http.get({ ...target, path: '/_ping', agent: false }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) resolve();
        else reject(engineUnavailable(addr, new Error(`ping answered HTTP ${res.statusCode}`)));
      });
      res.on('error', (err) => reject(engineUnavailable(addr, err)));
    });
    const timer = setTimeout(() => {
      const err: NodeJS.ErrnoException = new Error('ping timed out');
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    }, timeoutMs);
    req.on('error', (err) => reject(engineUnavailable(addr, err)));
    req.on('close', () => clearTimeout(timer));
  });
}

const CONNECTION_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EACCES', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/** An error from the transport (the engine went away), not an answer from it. */
export function isConnectionError(err: unknown): boolean {
  const code = errorCode(err);
  if (code !== undefined && CONNECTION_CODES.has(code)) return true;
  return err instanceof Error && /socket hang up/.test(err.message);
}

export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

export function statusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err && typeof err.statusCode === 'number') return err.statusCode;
  return undefined;
}

/**
 * Splits Docker's multiplexed stdout/stderr stream (non-TTY containers and execs) into lines.
 * Frames are [stream, 0, 0, 0, size (u32 BE)] + payload; a frame or a line may span chunks.
 */
export function readLines(stream: NodeJS.ReadableStream | Readable, onLine: (line: string, source: 'stdout' | 'stderr') => void): void {
  let pending: Buffer = Buffer.alloc(0);
  const partial = { stdout: '', stderr: '' };
  const emit = (source: 'stdout' | 'stderr', text: string) => {
    const parts = (partial[source] + text).split('\n');
    partial[source] = parts.pop() ?? '';
    for (const p of parts) onLine(p.replace(/\r$/, ''), source);
  };
  stream.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      emit(pending[0] === 2 ? 'stderr' : 'stdout', pending.subarray(8, 8 + size).toString('utf8'));
      pending = pending.subarray(8 + size);
    }
  });
  stream.on('end', () => {
    for (const source of ['stdout', 'stderr'] as const) if (partial[source]) onLine(partial[source], source);
  });
}

export interface ExecResult {
  exitCode: number;
  /** stdout and stderr, interleaved as lines arrived. */
  output: string;
}

/** Runs `cmd` (no shell) in a running container as `user` and returns its exit code and output. */
export async function execInContainer(
  docker: Docker,
  containerId: string,
  cmd: string[],
  opts: { user?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  const exec = await docker.getContainer(containerId).exec({
    Cmd: cmd,
    User: opts.user ?? '1000:1000',
    AttachStdout: true,
    AttachStderr: true,
    Privileged: false,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const lines: string[] = [];
  readLines(stream, (line) => {
    if (lines.length < 2_000) lines.push(line);
  });
  const timeoutMs = opts.timeoutMs ?? 15_000;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`${cmd[0] ?? 'exec'} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  // The stream can close a moment before the engine records the exit code.
  for (let i = 0; ; i++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null) return { exitCode: info.ExitCode, output: lines.join('\n') };
    if (i > 100) throw new Error(`${cmd[0] ?? 'exec'}: no exit code reported`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
