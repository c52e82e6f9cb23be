import { fork } from 'node:child_process';
import cluster from 'node:cluster';
import { z } from 'zod';

/*
 * One running instance of a supervised child, whatever runs it: a forked process (agent,
 * control), a cluster worker (edge) or a service started in-process that owns a process of
 * its own (the embedded PostgreSQL server). The supervisor only sees this shape.
 */

import type { Ids } from '../lib/system-user.js';

export type { Ids };

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Instance {
  readonly pid: number;
  /** Resolves when the child said `{ type: 'ready' }` (a service: at once). */
  readonly ready: Promise<void>;
  readonly exited: Promise<Exit>;
  /** Asks it to drain and stop (SIGTERM). */
  terminate(): void;
  kill(): void;
}

/** What a child may send over its IPC channel; anything else is ignored. */
const childMessage = z.looseObject({ type: z.enum(['ready', 'status']) });

export interface ProcessLaunch {
  entry: string;
  execArgv: string[];
  env: Record<string, string>;
  runAs?: Ids | undefined;
  /** A `{ type: 'status', … }` message, without its type. */
  onStatus(status: Record<string, unknown>): void;
  /** Spawn, signal or IPC errors; without a listener an 'error' event would end the supervisor. */
  onError(err: Error): void;
}

function listen(onMessage: (listener: (msg: unknown) => void) => void, onStatus: ProcessLaunch['onStatus']): Promise<void> {
  return new Promise((resolve) => {
    onMessage((raw) => {
      const parsed = childMessage.safeParse(raw);
      if (!parsed.success) return;
      const { type, ...rest } = parsed.data;
      if (type === 'ready') resolve();
      else onStatus(rest);
    });
  });
}

/**
 * A forked child in its own process group: a terminal's Ctrl-C reaches only the supervisor,
 * which then drains in order instead of every process stopping at once.
 */
export function forkInstance(o: ProcessLaunch): Instance {
  const child = fork(o.entry, [], {
    execArgv: o.execArgv,
    env: o.env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    detached: true,
    ...(o.runAs ? { uid: o.runAs.uid, gid: o.runAs.gid } : {}),
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (err) => {
      o.onError(err);
      // A child that could not be spawned emits 'error' and never 'exit'.
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });
  return {
    pid: child.pid ?? -1,
    ready: listen((l) => child.on('message', l), o.onStatus),
    exited,
    terminate: () => void child.kill('SIGTERM'),
    kill: () => void child.kill('SIGKILL'),
  };
}

/**
 * A cluster worker. SCHED_NONE: the worker's own listen() is served by the primary (root),
 * which binds the port and hands the listening socket over, so the worker needs no
 * capability, and the kernel spreads accepts over the workers without a hop through here.
 */
export function clusterInstance(o: ProcessLaunch): Instance {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({
    exec: o.entry,
    execArgv: o.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...(o.runAs ? { uid: o.runAs.uid, gid: o.runAs.gid } : {}),
  });
  // cluster.fork adds this to the supervisor's own environment, which main() trims first.
  const worker = cluster.fork(o.env);
  worker.on('error', o.onError);
  const exited = new Promise<Exit>((resolve) => {
    worker.once('exit', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
  });
  const proc = worker.process;
  return {
    pid: proc.pid ?? -1,
    ready: listen((l) => worker.on('message', l), o.onStatus),
    exited,
    terminate: () => void proc.kill('SIGTERM'),
    kill: () => void proc.kill('SIGKILL'),
  };
}

/** A service the supervisor starts in-process and that runs its own process (the embedded store). */
export interface ServiceHandle {
  pid: number;
  exited: Promise<void>;
  stop(): Promise<void>;
  /** Added to the environment of every child started after it. */
  env?: Record<string, string>;
  /**
   * False when the service joined a process someone else started: then stopping it means
   * stop() only, and it is never killed.
   */
  owned?: boolean;
}

export function serviceInstance(handle: ServiceHandle, onStopError: (err: unknown) => void): Instance {
  let stopping: Promise<boolean> | undefined;
  let stopDone: () => void = () => {};
  const gone = handle.owned === false ? Promise.race([handle.exited, new Promise<void>((resolve) => (stopDone = resolve))]) : handle.exited;
  const exited = gone.then(async (): Promise<Exit> => {
    // Exit code 0 only when it went because it was asked to and its stop() succeeded.
    if (!stopping) return { code: null, signal: null };
    return { code: (await stopping) ? 0 : 1, signal: null };
  });
  return {
    pid: handle.pid,
    ready: Promise.resolve(),
    exited,
    terminate: () => {
      stopping ??= handle.stop().then(
        () => true,
        (err: unknown) => {
          onStopError(err);
          return false;
        },
      );
      void stopping.then(stopDone);
    },
    kill: () => {
      try {
        if (handle.owned !== false && handle.pid > 0) process.kill(handle.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    },
  };
}
