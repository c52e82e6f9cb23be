/** Process plumbing for the benchmark: children with an IPC channel, /proc CPU and memory readings. */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux build in practice). */
const USER_HZ = 100;

/** utime + stime of a process, in ms (0 when it is gone). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
  } catch {
    return 0;
  }
}

export const totalCpuMs = (pids: readonly number[]) => pids.reduce((s, p) => s + cpuMs(p), 0);

/** User-mode CPU ms of a process; with `reaped`, plus that of its children that have exited (wrk runs). */
export function userMs(pid: number | 'self', reaped = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + (reaped ? Number(fields[13]) : 0)) * 1000) / USER_HZ;
  } catch {
    return 0;
  }
}

/** User-mode CPU ms of the whole machine (all CPUs), from /proc/stat. */
export function machineUserMs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/) ?? [];
  return ((Number(cpu[1]) + Number(cpu[2])) * 1000) / USER_HZ;
}

function statusKb(pid: number, field: string, file = 'status'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Resident set size in bytes. */
export const rssBytes = (pid: number) => statusKb(pid, 'VmRSS') * 1024;
/** Proportional set size in bytes: shared pages split between the processes sharing them. */
export const pssBytes = (pid: number) => statusKb(pid, 'Pss', 'smaps_rollup') * 1024;

/** A forked node child that posts {type: 'ready', …} once up. */
export interface Child<Ready> {
  proc: ChildProcess;
  ready: Ready;
  /** Sends {cmd} and resolves with the next message of `type`. */
  ask<T>(cmd: string, type: string, timeoutMs?: number): Promise<T>;
  /** What the child printed (stdout and stderr, first 4 MB). */
  stderr(): string;
  stop(): Promise<void>;
}

export async function startChild<Ready>(script: string, env: Record<string, string>, execArgv: string[] = []): Promise<Child<Ready>> {
  const proc = fork(script, [], { env: { ...process.env, ...env }, execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  // stdout too: node's diagnostics (--trace-gc, …) print there.
  let stderr = '';
  const keep = (d: Buffer) => {
    if (stderr.length < 4_000_000) stderr += d.toString();
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} not ready after 30 s\n${stderr}`)), 30_000);
    const onMessage = (m: unknown) => {
      if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'ready') return;
      clearTimeout(timer);
      proc.off('message', onMessage);
      resolve(m as Ready);
    };
    proc.on('message', onMessage);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}\n${stderr}`));
    });
  });
  return {
    proc,
    ready,
    ask<T>(cmd: string, type: string, timeoutMs = 10_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${script}: no ${type} in ${timeoutMs} ms`)), timeoutMs);
        const onMessage = (m: unknown) => {
          if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== type) return;
          clearTimeout(timer);
          proc.off('message', onMessage);
          resolve(m as T);
        };
        proc.on('message', onMessage);
        proc.send({ cmd });
      });
    },
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      if (proc.connected) proc.disconnect();
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Nearest-rank quantile. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

export const median = (values: readonly number[]) => quantile(values, 0.5);
