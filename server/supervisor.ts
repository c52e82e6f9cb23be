import type { Logger } from '../lib/log.js';
import { Backoff, DEFAULT_BACKOFF, type BackoffPolicy } from './supervisor-backoff.js';
import { clusterInstance, forkInstance, serviceInstance, type Exit, type Ids, type Instance, type ServiceHandle } from './supervisor-instances.js';

/*
 * The supervisor `npm start` runs (docs/processes.md): starts the children in table order,
 * each only once the one before said it is ready; restarts one that exits with backoff;
 * drains them in reverse order on stop, SIGKILL after each one's deadline.
 */

interface CommonSpec {
  /** agent, control, edge, store: the `child` field of every log line about it. */
  name: string;
  /** From start to `{ type: 'ready' }`; longer is a start failure. */
  readyTimeoutMs: number;
  /** From SIGTERM to exit; longer gets SIGKILL. */
  stopTimeoutMs: number;
}

export interface ProcessSpec extends CommonSpec {
  /** fork: one process; cluster: `workers` processes sharing the ports the primary binds. */
  kind: 'fork' | 'cluster';
  entry: string;
  workers?: number;
  /** Run as this uid/gid (root only); unset: as the supervisor. */
  runAs?: Ids | undefined;
  /** Added to the common environment (tests' fixture children). */
  env?: Record<string, string>;
}

export interface ServiceSpec extends CommonSpec {
  kind: 'service';
  start(): Promise<ServiceHandle>;
}

export type ChildSpec = ProcessSpec | ServiceSpec;

export interface SupervisorOptions {
  /** In start order; stopped in the reverse order. */
  children: ChildSpec[];
  /** The environment every child gets. */
  env: Record<string, string>;
  /** Node flags of every child (the supervisor's own: tsx under tests, source maps in production). */
  execArgv: string[];
  logger: Logger;
  backoff?: BackoffPolicy;
}

export type StartResult = { ok: true } | { ok: false; stopped: boolean; message: string; configError?: boolean };

interface Slot {
  spec: ChildSpec;
  /** 1-based, cluster children only. */
  worker?: number;
  backoff: Backoff;
  /** `ready` once it said so: one stopped before that had nothing to drain. */
  current?: { instance: Instance; since: number; ready: boolean };
  timer?: NodeJS.Timeout;
}

class LaunchError extends Error {
  /** A child refused its configuration (exit 78, EX_CONFIG): the supervisor exits 78 too. */
  configError = false;
}

export class Supervisor {
  private readonly groups: Slot[][];
  private readonly log: Logger;
  private readonly serviceEnv: Record<string, string> = {};
  private readonly abort = new AbortController();
  private stopping = false;
  private starting: Promise<StartResult> | undefined;
  private stopped: Promise<boolean> | undefined;

  constructor(private readonly opts: SupervisorOptions) {
    this.log = opts.logger;
    const backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.groups = opts.children.map((spec) => {
      const count = spec.kind === 'cluster' ? Math.max(1, spec.workers ?? 1) : 1;
      return Array.from({ length: count }, (_, i) => ({
        spec,
        ...(spec.kind === 'cluster' ? { worker: i + 1 } : {}),
        backoff: new Backoff(backoff),
      }));
    });
  }

  /** Starts every child in order; the first one that does not get ready ends the start. */
  start(): Promise<StartResult> {
    this.starting ??= (async (): Promise<StartResult> => {
      for (const group of this.groups) {
        if (this.stopping) return { ok: false, stopped: true, message: 'stopped during start-up' };
        const results = await Promise.allSettled(group.map((slot) => this.launch(slot)));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) {
          const message = failed.reason instanceof Error ? failed.reason.message : String(failed.reason);
          return { ok: false, stopped: this.stopping, message, configError: failed.reason instanceof LaunchError && failed.reason.configError };
        }
      }
      return { ok: true };
    })();
    return this.starting;
  }

  /** Drains every child in reverse start order. True when each one exited 0 by itself. */
  stop(): Promise<boolean> {
    this.stopped ??= (async () => {
      this.stopping = true;
      this.abort.abort();
      for (const slot of this.groups.flat()) clearTimeout(slot.timer);
      await this.starting;
      let clean = true;
      for (const group of [...this.groups].reverse()) {
        const results = await Promise.all(group.map((slot) => this.stopSlot(slot)));
        clean = clean && results.every(Boolean);
      }
      return clean;
    })();
    return this.stopped;
  }

  private fields(slot: Slot, pid?: number): Record<string, unknown> {
    return { child: slot.spec.name, ...(slot.worker ? { worker: slot.worker } : {}), ...(pid !== undefined ? { pid } : {}) };
  }

  private label(slot: Slot): string {
    return slot.worker ? `${slot.spec.name} worker ${slot.worker}` : slot.spec.name;
  }

  private async spawn(slot: Slot): Promise<Instance> {
    const { spec } = slot;
    if (spec.kind === 'service') {
      const starting = spec.start();
      const handle = await withDeadline(starting, spec.readyTimeoutMs, `${spec.name} did not get ready within ${seconds(spec.readyTimeoutMs)} s`).catch((err: unknown) => {
        // It may still come up after the deadline: stop it then rather than leave it running.
        void starting.then((late) => late.stop()).catch(() => undefined);
        throw err;
      });
      Object.assign(this.serviceEnv, handle.env ?? {});
      return serviceInstance(handle, (err) => this.log.error({ ...this.fields(slot, handle.pid), err }, 'child stop failed'));
    }
    let pid = -1;
    const launch = {
      entry: spec.entry,
      execArgv: this.opts.execArgv,
      env: { ...this.opts.env, ...this.serviceEnv, ...spec.env },
      runAs: spec.runAs,
      onStatus: (status: Record<string, unknown>) => this.log.info({ ...this.fields(slot, pid), status }, 'child status'),
      onError: (err: Error) => this.log.error({ ...this.fields(slot, pid), err: err.message }, 'child process error'),
    };
    const instance = spec.kind === 'fork' ? forkInstance(launch) : clusterInstance(launch);
    pid = instance.pid;
    return instance;
  }

  /** Starts the slot's child and waits for its ready; throws a LaunchError saying why not. */
  private async launch(slot: Slot): Promise<void> {
    const { spec } = slot;
    const instance = await this.spawn(slot).catch((err: unknown) => {
      if (err instanceof LaunchError) throw err;
      throw new LaunchError(`${this.label(slot)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    });
    slot.current = { instance, since: Date.now(), ready: false };
    this.log.info(this.fields(slot, instance.pid), 'child started');
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const outcome = await Promise.race([
      instance.ready.then(() => ({ kind: 'ready' as const })),
      instance.exited.then((exit) => ({ kind: 'exited' as const, exit })),
      new Promise<{ kind: 'timeout' }>((resolve) => (timer = setTimeout(() => resolve({ kind: 'timeout' }), spec.readyTimeoutMs))),
      new Promise<{ kind: 'aborted' }>((resolve) => {
        onAbort = () => resolve({ kind: 'aborted' });
        if (this.abort.signal.aborted) onAbort();
        else this.abort.signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) this.abort.signal.removeEventListener('abort', onAbort);
    switch (outcome.kind) {
      case 'ready':
        slot.current.ready = true;
        this.log.info({ ...this.fields(slot, instance.pid), ms: Date.now() - slot.current.since }, 'child ready');
        void instance.exited.then((exit) => this.onExit(slot, instance, exit));
        return;
      case 'aborted':
        // stop() drains it with the others.
        throw new LaunchError(`${this.label(slot)}: stopped while starting`);
      case 'exited': {
        slot.current = undefined;
        const err = new LaunchError(`${this.label(slot)} ${describeExit(outcome.exit)} before it was ready (see its log above)`);
        err.configError = outcome.exit.code === 78;
        throw err;
      }
      case 'timeout':
        this.log.error({ ...this.fields(slot, instance.pid), readyTimeoutMs: spec.readyTimeoutMs }, 'child not ready in time; killing it');
        instance.kill();
        await instance.exited;
        slot.current = undefined;
        throw new LaunchError(`${this.label(slot)} did not get ready within ${seconds(spec.readyTimeoutMs)} s (see its log above)`);
    }
  }

  private onExit(slot: Slot, instance: Instance, exit: Exit): void {
    if (this.stopping || slot.current?.instance !== instance) return;
    const uptimeMs = Date.now() - slot.current.since;
    slot.current = undefined;
    const restartInMs = slot.backoff.delay(uptimeMs);
    this.log.warn({ ...this.fields(slot, instance.pid), code: exit.code, signal: exit.signal, uptimeMs, restartInMs }, 'child exited');
    this.scheduleRestart(slot, restartInMs);
  }

  private scheduleRestart(slot: Slot, delayMs: number): void {
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (this.stopping) return;
      this.log.info({ ...this.fields(slot), delayMs }, 'child restarting');
      this.launch(slot).catch((err: unknown) => {
        if (this.stopping) return;
        const restartInMs = slot.backoff.delay(0);
        this.log.error({ ...this.fields(slot), reason: err instanceof Error ? err.message : String(err), restartInMs }, 'child failed to start again');
        this.scheduleRestart(slot, restartInMs);
      });
    }, delayMs);
  }

  private async stopSlot(slot: Slot): Promise<boolean> {
    const current = slot.current;
    if (!current) return true;
    const { instance } = current;
    const { stopTimeoutMs } = slot.spec;
    const began = Date.now();
    this.log.info(this.fields(slot, instance.pid), 'stopping child');
    instance.terminate();
    let timer: NodeJS.Timeout | undefined;
    let exit = await Promise.race([instance.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), stopTimeoutMs)))]);
    clearTimeout(timer);
    const killed = exit === undefined;
    if (exit === undefined) {
      this.log.warn({ ...this.fields(slot, instance.pid), stopTimeoutMs }, 'child did not stop in time; killing it');
      instance.kill();
      exit = await instance.exited;
    }
    slot.current = undefined;
    this.log.info({ ...this.fields(slot, instance.pid), code: exit.code, signal: exit.signal, ms: Date.now() - began }, 'child stopped');
    // A child still starting may not have its SIGTERM handler yet: dying of that signal is its clean stop.
    return !killed && (exit.code === 0 || (!current.ready && exit.signal === 'SIGTERM'));
  }
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

function describeExit(exit: Exit): string {
  if (exit.signal) return `was killed by ${exit.signal}`;
  if (exit.code === null) return 'could not be started';
  return `exited with code ${exit.code}`;
}

function withDeadline<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new LaunchError(message)), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * Runs a supervisor as a process: starts it, drains on SIGTERM/SIGINT. Returns the exit code:
 * 0 when everything stopped cleanly, 1 after a failed start or an unclean stop.
 */
export async function runSupervisor(sup: Supervisor, logger: Logger, stderr: NodeJS.WritableStream = process.stderr): Promise<number> {
  let onStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => (onStop = resolve));
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, 'shutting down');
    void sup.stop();
    onStop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const started = await sup.start();
  if (started.ok) {
    logger.info({}, 'all processes ready');
    await stopRequested;
  } else if (!started.stopped) {
    logger.fatal({ reason: started.message }, 'start-up failed');
    stderr.write(`hackstream: start-up failed: ${started.message}\n`);
    await sup.stop();
    return started.configError ? 78 : 1;
  }
  const clean = await sup.stop();
  logger.info({ clean }, 'all processes stopped');
  return clean ? 0 : 1;
}
