/**
 * Where a `node --cpu-prof` profile spends its time: self time by function and by area.
 * Usage: node --import tsx bench/gateway/cpuprofile-summary.ts FILE.cpuprofile [top=30]
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Coarse areas, first match wins. */
const AREAS: Array<[string, RegExp]> = [
  ['idle', /^\(idle\)$/],
  ['GC', /^\(garbage collector\)$/],
  ['native / libuv / syscalls (program)', /^\(program\)$/],
  ['gateway code', /\/gateway\//],
  ['core code', /\/core\//],
  ['node:net', /node:net$/],
  ['node:_tls_wrap / tls', /node:_tls|node:tls/],
  ['node streams', /node:internal\/streams/],
  ['node timers', /node:internal\/timers|node:timers/],
  ['node events / process', /node:events|node:internal\/process|node:internal\/async_hooks/],
  ['other node internals', /^node:/],
  ['dependencies', /node_modules/],
  // No script URL: a C++ binding (socket write, connect, close, …), i.e. the syscall it wraps.
  ['native bindings (syscalls)', /^[^/:]*$/],
];

function main(): void {
  const file = process.argv[2];
  if (!file) throw new Error('usage: cpuprofile-summary FILE.cpuprofile [top]');
  const top = Number(process.argv[3] ?? 30);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf) continue;
    const where = cf.url ? `${cf.url.replace(/^.*\/(hackstream-bench|node_modules)\//, '$1/')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
    const probe = cf.url || cf.functionName;
    const area = AREAS.find(([, re]) => re.test(probe))?.[0] ?? 'other';
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busy = total - (areas.get('idle') ?? 0);
  const pct = (us: number, of: number) => `${((100 * us) / of).toFixed(1)}%`.padStart(6);
  process.stdout.write(`profile ${(total / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s\n\nby area (share of busy time):\n`);
  for (const [area, us] of [...areas].sort((a, b) => b[1] - a[1])) {
    if (area !== 'idle') process.stdout.write(`${pct(us, busy)}  ${area}\n`);
  }
  process.stdout.write(`\ntop ${top} functions by self time (share of busy time):\n`);
  for (const [key, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    if (!key.startsWith('(idle)')) process.stdout.write(`${pct(us, busy)}  ${key}\n`);
  }
}

main();
