/*
 * The simulated Pi Zero's box: a cgroup with 512 MB of memory and no swap, one host core
 * (cpuset) of which it gets a fraction (CFS quota). cgroup v2 where the memory and cpu
 * controllers are there; this host (and others with Docker's hybrid layout) has them on v1,
 * where memory.memsw.limit_in_bytes = memory.limit_in_bytes is the "no swap".
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';

/**
 * CFS period, µs. Short, so that the box runs as a slow core rather than a fast one that stops
 * for most of each period (at 100 ms a 26 % quota froze the client for ~74 ms at a time, which
 * added tens of ms to every round trip a real Pi Zero does not have).
 */
export const PERIOD_US = 10_000;

export interface Limits {
  memoryBytes: number;
  /** CFS quota per PERIOD_US, µs (PERIOD_US = the whole core). */
  quotaUs: number;
  /** The host CPU the box is pinned to. */
  cpu: number;
}

export interface Box {
  name: string;
  version: 1 | 2;
  /** cgroup.procs files a process writes its pid into to enter the box. */
  procsFiles: string[];
  /** CPU time used by everything in the box so far, ns. */
  usageNs(): number;
  /** Throttled periods and time so far (the quota bit). */
  throttled(): { periods: number; ns: number };
  /** Peak memory charged to the box (RSS + page cache), bytes; swap used, bytes. */
  memory(): { peakBytes: number; swapBytes: number; oomKills: number };
  pids(): number[];
  remove(): void;
}

const read = (f: string) => readFileSync(f, 'utf8').trim();
const write = (f: string, v: string | number) => writeFileSync(f, String(v));
const kv = (f: string): Record<string, number> =>
  Object.fromEntries(read(f).split('\n').map((l) => l.split(/\s+/)).map(([k, v]) => [k ?? '', Number(v)]));

function isV2(): boolean {
  const f = join(ROOT, 'cgroup.controllers');
  if (!existsSync(f)) return false;
  const c = read(f).split(' ');
  return c.includes('memory') && c.includes('cpu');
}

function v2(name: string, l: Limits): Box {
  const dir = join(ROOT, name);
  const ctl = read(join(ROOT, 'cgroup.subtree_control'));
  for (const c of ['memory', 'cpu', 'cpuset']) if (!ctl.includes(c)) write(join(ROOT, 'cgroup.subtree_control'), `+${c}`);
  mkdirSync(dir, { recursive: true });
  write(join(dir, 'memory.max'), l.memoryBytes);
  write(join(dir, 'memory.swap.max'), 0);
  write(join(dir, 'cpu.max'), `${l.quotaUs} ${PERIOD_US}`);
  // A dedicated core: the box gets its quota before the rest of this busy host.
  write(join(dir, 'cpu.weight'), 10000);
  write(join(dir, 'cpuset.cpus'), l.cpu);
  return {
    name,
    version: 2,
    procsFiles: [join(dir, 'cgroup.procs')],
    usageNs: () => kv(join(dir, 'cpu.stat')).usage_usec! * 1000,
    throttled: () => {
      const s = kv(join(dir, 'cpu.stat'));
      return { periods: s.nr_throttled ?? 0, ns: (s.throttled_usec ?? 0) * 1000 };
    },
    memory: () => ({
      peakBytes: existsSync(join(dir, 'memory.peak')) ? Number(read(join(dir, 'memory.peak'))) : NaN,
      swapBytes: Number(read(join(dir, 'memory.swap.current'))),
      oomKills: kv(join(dir, 'memory.events')).oom_kill ?? 0,
    }),
    pids: () => read(join(dir, 'cgroup.procs')).split('\n').filter(Boolean).map(Number),
    remove: () => {
      try {
        rmdirSync(dir);
      } catch {
        // still has a process (it is ending) or already gone
      }
    },
  };
}

function v1(name: string, l: Limits): Box {
  const d = (ctl: string) => join(ROOT, ctl, name);
  for (const ctl of ['memory', 'cpu', 'cpuacct', 'cpuset']) mkdirSync(d(ctl), { recursive: true });
  write(join(d('memory'), 'memory.limit_in_bytes'), l.memoryBytes);
  // memory+swap = memory: the box may not swap (the host has no swap either; this makes it explicit).
  if (existsSync(join(d('memory'), 'memory.memsw.limit_in_bytes'))) write(join(d('memory'), 'memory.memsw.limit_in_bytes'), l.memoryBytes);
  write(join(d('memory'), 'memory.swappiness'), 0);
  write(join(d('cpu'), 'cpu.cfs_period_us'), PERIOD_US);
  write(join(d('cpu'), 'cpu.cfs_quota_us'), l.quotaUs);
  // A dedicated core: the box gets its quota before the rest of this busy host.
  write(join(d('cpu'), 'cpu.shares'), 262144);
  write(join(d('cpuset'), 'cpuset.cpus'), l.cpu);
  write(join(d('cpuset'), 'cpuset.mems'), read(join(ROOT, 'cpuset', 'cpuset.mems')));
  return {
    name,
    version: 1,
    procsFiles: ['memory', 'cpu', 'cpuacct', 'cpuset'].map((c) => join(d(c), 'cgroup.procs')),
    usageNs: () => Number(read(join(d('cpuacct'), 'cpuacct.usage'))),
    throttled: () => {
      const s = kv(join(d('cpu'), 'cpu.stat'));
      return { periods: s.nr_throttled ?? 0, ns: s.throttled_time ?? 0 };
    },
    memory: () => ({
      peakBytes: Number(read(join(d('memory'), 'memory.max_usage_in_bytes'))),
      swapBytes: kv(join(d('memory'), 'memory.stat')).swap ?? 0,
      oomKills: kv(join(d('memory'), 'memory.oom_control')).oom_kill ?? 0,
    }),
    pids: () => read(join(d('memory'), 'cgroup.procs')).split('\n').filter(Boolean).map(Number),
    remove: () => {
      for (const ctl of ['memory', 'cpu', 'cpuacct', 'cpuset']) {
        try {
          rmdirSync(d(ctl));
        } catch {
          // still has a process (it is ending) or already gone
        }
      }
    },
  };
}

/** A fresh box (a leftover one of the same name from a killed run is reused). */
export function createBox(name: string, l: Limits): Box {
  return isV2() ? v2(name, l) : v1(name, l);
}

export interface Rollup {
  rssKiB: number;
  pssKiB: number;
  swapKiB: number;
}

/** /proc/<pid>/smaps_rollup summed over pids (processes that ended meanwhile count 0). */
export function rollup(pids: number[]): Rollup {
  const out: Rollup = { rssKiB: 0, pssKiB: 0, swapKiB: 0 };
  for (const pid of pids) {
    let s: string;
    try {
      s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    } catch {
      continue;
    }
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
    out.rssKiB += kib('Rss');
    out.pssKiB += kib('Pss');
    out.swapKiB += kib('Swap');
  }
  return out;
}
