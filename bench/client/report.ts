/* The bench's Markdown tables (stdout without --json). */
import { pct, type Attached, type Summary } from './stats.js';

export interface Result {
  started: string;
  machine: { cpus: string; memoryGiB: number; node: string; loadAtStart: string; otherContainersAtStart: number };
  runs: number;
  rounds: number;
  seconds: number;
  bareNodeRssKiB: number;
  screenshotMs: Summary;
  /** By client (before, checkout (tsx), packaged); absent with --runs 0. */
  launch: { cold: Record<string, Launches>; pool: Record<string, Launches> } | undefined;
  attached: Attached[];
}

export interface Launches {
  /** launch → the colour block in a screenshot */
  visible: Summary;
  /** launch → the CLI printing "…; attaching" (it has the session's descriptor) */
  attaching: Summary;
  /** launch → xpra's window mapped on the display */
  window: Summary;
}

const mib = (kib: number) => (kib / 1024).toFixed(1);
const kBps = (bps: number) => (bps / 1000).toFixed(1);
const Bps = (bps: number) => String(Math.round(bps));
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '–');

/** Each client's launch → visible p50 over the "before" client's, per path; and pool / cold. */
function launchRatios(l: NonNullable<Result['launch']>): string[] {
  const lines: string[] = [];
  for (const [path, by] of [['cold', l.cold], ['pool', l.pool]] as const) {
    const before = by.before?.visible.p50 ?? NaN;
    for (const [name, x] of Object.entries(by)) if (name !== 'before') lines.push(`- ${path}, launch → visible p50, ${name} / before: ${ratio(x.visible.p50, before)}`);
  }
  for (const name of Object.keys(l.cold)) {
    const pool = l.pool[name];
    if (pool) lines.push(`- ${name}: pool / cold, launch → visible p50: ${ratio(pool.visible.p50, l.cold[name]!.visible.p50)}`);
  }
  return lines;
}

export function report(r: Result): string {
  const launchRow = (name: string, l: Launches) =>
    `| ${name} | **${l.visible.p50}** | ${l.visible.p95} | ${l.visible.min} | ${l.visible.max} | ${l.attaching.p50} | ${l.window.p50} |`;
  const row = (a: Attached) =>
    `| ${a.quality} (${a.cli}, round ${a.round}) | ${mib(a.wrapperRssKiB)} (peak ${mib(a.wrapperHwmKiB)}) | ${a.idle.wrapperCpu} / ${a.scroll.wrapperCpu} | ${a.nodeWhileAttached.length ? `**${a.nodeWhileAttached.length}**` : 'none'} | ${a.nodeLaunchPeakKiB ? mib(a.nodeLaunchPeakKiB) : '–'} | ` +
    `${mib(a.xpraRssKiB)} (peak ${mib(a.xpraHwmKiB)}) | ${a.idle.xpraCpu} / ${a.scroll.xpraCpu} | ` +
    `${Bps(a.idle.downBps)} / ${Bps(a.idle.upBps)} | ${kBps(a.scroll.downBps)} / ${kBps(a.scroll.upBps)} |${a.scrolled ? '' : ' (page did not scroll away)'}`;
  const tsx = r.attached.filter((a) => a.cli === 'tsx');
  const med = (q: string, f: (a: Attached) => number) => pct(tsx.filter((a) => a.quality === q).map(f), 50);
  const built = r.attached.find((a) => a.cli !== 'tsx');
  const low = tsx.some((a) => a.quality === 'low') ? { rss: med('low', (a) => a.wrapperRssKiB), xpra: med('low', (a) => a.xpraRssKiB), node: med('low', (a) => a.nodeLaunchPeakKiB) } : undefined;
  const withNode = r.attached.filter((a) => a.nodeWhileAttached.length);
  const scroll = (q: string) => med(q, (a) => a.scroll.downBps);
  const lines = [
    `Run of ${r.started}: ${r.machine.cpus}, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; load ${r.machine.loadAtStart} at the start, ${r.machine.otherContainersAtStart} other container(s) running.`,
    '',
    ...(r.launch
      ? [
          `Launch → page visible on the client display (ms, ${r.runs} runs each, after one warm-up):`,
          '',
          '| path, client | visible p50 | p95 | min | max | CLI says "attaching" p50 | xpra window mapped p50 |',
          '| --- | --- | --- | --- | --- | --- | --- |',
          ...Object.entries(r.launch.cold).map(([name, l]) => launchRow(`cold (no pool), ${name}`, l)),
          ...Object.entries(r.launch.pool).map(([name, l]) => launchRow(`from the pool, ${name}`, l)),
          `Screenshots took ${r.screenshotMs.p50} ms p50 (${r.screenshotMs.p95} ms p95): the resolution of these times.`,
          '',
        ]
      : []),
    `Attached to the long page (${r.seconds} s idle, then ${r.seconds} s of wheel scrolling at 10 notches/s):`,
    '',
    '| quality (CLI) | wrapper (sh) RSS MiB | wrapper CPU % idle / scroll | node under the wrapper while attached | Node CLI peak RSS during launch MiB | xpra client RSS MiB | xpra CPU % idle / scroll | idle B/s down / up | scrolling kB/s down / up |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.attached.map(row),
    '',
    'Ratios in this run:',
    `(medians over the ${r.rounds} round(s) where there are several)`,
    `- node processes under the wrapper while attached: ${withNode.length ? `in ${withNode.length} of ${r.attached.length} sessions (${withNode.flatMap((a) => a.nodeWhileAttached).join('; ')})` : `none in any of the ${r.attached.length} sessions`}`,
    ...(low ? [`- wrapper RSS / xpra client RSS at low: ${ratio(low.rss, low.xpra)}`] : []),
    ...(low ? [`- wrapper RSS / an idle bare Node process (${mib(r.bareNodeRssKiB)} MiB): ${ratio(low.rss, r.bareNodeRssKiB)}`] : []),
    ...(low && built ? [`- Node CLI peak RSS during launch, ${built.cli} / tsx: ${ratio(built.nodeLaunchPeakKiB, low.node)}`] : []),
    ...(tsx.length ? [`- bytes down while scrolling, low / high: ${ratio(scroll('low'), scroll('high'))}; low / auto: ${ratio(scroll('low'), scroll('auto'))}; auto / high: ${ratio(scroll('auto'), scroll('high'))}`] : []),
    ...(r.launch ? launchRatios(r.launch) : []),
    '',
    `xpra client processes: ${[...new Set(r.attached.flatMap((a) => a.xpraProcesses.map((c) => c.replace(/ --.*/, ''))))].join('; ')}`,
    '',
  ];
  return lines.join('\n');
}
