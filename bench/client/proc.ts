/* What the bench reads about client-side processes: /proc and ss(8). Linux only. */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** USER_HZ: utime and stime in /proc/<pid>/stat are in these ticks (100 on Linux). */
const TICKS_PER_S = 100;

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined; // the process ended
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces). */
function statFields(pid: number): string[] | undefined {
  const s = read(`/proc/${pid}/stat`);
  return s === undefined ? undefined : s.slice(s.lastIndexOf(')') + 2).split(' ');
}

/** Live child processes of pid whose command line matches `match` (all when omitted). */
export function childrenOf(pid: number, match?: RegExp): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f?.[1] !== String(pid)) continue; // field 4, PPid
    if (match !== undefined && !match.test(commandOf(Number(name)))) continue;
    out.push(Number(name));
  }
  return out;
}

/** The command line, space-separated. */
export function commandOf(pid: number): string {
  return (read(`/proc/${pid}/cmdline`) ?? '').split('\0').join(' ').trim();
}

/** The process and all its descendants. */
export function treeOf(pid: number): number[] {
  return [pid, ...childrenOf(pid).flatMap(treeOf)];
}

export interface Memory {
  /** VmRSS, KiB. */
  rss: number;
  /** VmHWM (peak RSS), KiB. */
  hwm: number;
}

export function memoryOf(pid: number): Memory | undefined {
  const s = read(`/proc/${pid}/status`);
  if (s === undefined) return undefined;
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

/** utime + stime of the process so far, in seconds (threads included; reaped children not). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f === undefined ? NaN : (Number(f[11]) + Number(f[12])) / TICKS_PER_S; // fields 14 and 15
}

export interface TcpBytes {
  /** tcp_info bytes_received: payload bytes read from the connection(s). */
  down: number;
  /** tcp_info bytes_acked: payload bytes sent and acknowledged. */
  up: number;
  sockets: number;
}

/** Bytes so far on pid's established TCP connections to port (from the kernel's tcp_info, via ss). */
export async function tcpBytesOf(pid: number, port: number): Promise<TcpBytes> {
  const { stdout } = await run('ss', ['-tinpH', 'state', 'established', `( dport = :${port} )`], { env: { ...process.env, PATH: `/usr/bin:/bin:/usr/sbin:/sbin:${process.env.PATH ?? ''}` } });
  const sockets: string[] = [];
  for (const line of stdout.split('\n')) {
    if (/^\s/.test(line) && sockets.length) sockets[sockets.length - 1] += line;
    else if (line) sockets.push(line);
  }
  const total: TcpBytes = { down: 0, up: 0, sockets: 0 };
  for (const s of sockets) {
    if (!s.includes(`pid=${pid},`)) continue;
    total.down += Number(/bytes_received:(\d+)/.exec(s)?.[1] ?? 0);
    total.up += Number(/bytes_acked:(\d+)/.exec(s)?.[1] ?? 0);
    total.sockets++;
  }
  return total;
}

/** CPU % of one core used by pid between two cpuSeconds() readings `wallS` seconds apart. */
export const cpuPercent = (before: number, after: number, wallS: number) => ((after - before) / wallS) * 100;
