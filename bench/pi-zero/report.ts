/* bench/pi-zero's Markdown (stdout without --json). */
import { PERIOD_US, type Rollup } from './cgroup.js';

export interface Calibration {
  /** The published Pi Zero figure the quota is fitted to (openssl aes-256-cbc, 16 KiB blocks, kB/s). */
  piZeroKBps: number;
  /** The armel openssl under qemu on one whole host core. */
  fullCoreKBps: number;
  quotaUs: number;
  /** The same inside the calibrated box (should be close to piZeroKBps). */
  boxedKBps: number;
}

export interface Win {
  seconds: number;
  hostCorePct: number;
  piCpuPct: number;
  downBps: number;
  upBps: number;
}

export interface Run {
  quality: string;
  round: number;
  visibleMs: number;
  processes: string[];
  memSettled: Rollup;
  memScrolled: Rollup;
  cgroup: { peakBytes: number; swapBytes: number; oomKills: number };
  throttled: { periods: number; ns: number };
  idle: Win;
  keysWindow: Win;
  scrollWindow: Win;
  keys: Record<string, unknown>;
  scroll: Record<string, unknown>;
  scrolled: boolean;
}

export interface Result {
  started: string;
  machine: { cpus: string; memoryGiB: number; loadAtStart: string; loadAtEnd: string; qemu: string };
  calibration: Calibration;
  runs: Run[];
}

const mib = (kib: number) => (kib / 1024).toFixed(1);
const kB = (b: number) => (b / 1000).toFixed(1);
const num = (v: unknown) => (typeof v === 'number' ? v : NaN);
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? (a / b).toFixed(2) : '–');

export function report(r: Result): string {
  const c = r.calibration;
  const row = (x: Run) =>
    `| ${x.quality} (round ${x.round}) | ${mib(x.memSettled.rssKiB)} / ${mib(x.memSettled.pssKiB)} | ${mib(x.memScrolled.rssKiB)} / ${mib(x.memScrolled.pssKiB)} | ` +
    `${(x.cgroup.peakBytes / 2 ** 20).toFixed(0)} | ${x.cgroup.swapBytes} / ${x.memScrolled.swapKiB} | **${num(x.scroll.fps)}** (${String(x.scroll.changes)} changes / ${String(x.scroll.seconds)} s) | ` +
    `**${num(x.keys.p50)}** / **${num(x.keys.p95)}** (${String(x.keys.missed)} missed of ${String(x.keys.n)}) | ` +
    `${x.idle.piCpuPct} / ${x.keysWindow.piCpuPct} / ${x.scrollWindow.piCpuPct} | ${kB(x.idle.downBps)} / ${kB(x.keysWindow.downBps)} / ${kB(x.scrollWindow.downBps)} | ${(x.visibleMs / 1000).toFixed(0)} |${x.scrolled ? '' : ' page did not scroll away'}`;
  const first = (q: string) => r.runs.find((x) => x.quality === q);
  const low = first('low');
  const auto = first('auto');
  const lines = [
    `Run of ${r.started}: ${r.machine.cpus}, ${r.machine.memoryGiB} GiB; load ${r.machine.loadAtStart} at the start, ${r.machine.loadAtEnd} at the end; ${r.machine.qemu}.`,
    '',
    `Calibration: the armel \`openssl speed -evp aes-256-cbc\` (16 KiB blocks) under qemu-user did ${c.fullCoreKBps.toFixed(0)} kB/s per CPU second of a host core; ` +
      `a Pi Zero does ${c.piZeroKBps} kB/s (sbc-bench, \`-elapsed\`), so the box gets ${c.quotaUs} µs per ${PERIOD_US / 1000} ms (${((100 * c.quotaUs) / PERIOD_US).toFixed(1)} % of one host core); inside the box \`-elapsed\` gave ${c.boxedKBps.toFixed(0)} kB/s.`,
    '',
    '| preset | RSS / PSS settled (MiB) | RSS / PSS after scrolling (MiB) | box peak (MiB, incl. page cache) | swap (box bytes / smaps KiB) | fps scrolling | key→pixel p50 / p95 (ms) | CPU % of the simulated core idle / keys / scroll | kB/s down idle / keys / scroll | attach → page (s) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.runs.map(row),
    '',
  ];
  if (low && auto) {
    lines.push(
      'low ÷ auto (first round of each): ' +
        [
          `RSS ${ratio(low.memScrolled.rssKiB, auto.memScrolled.rssKiB)}`,
          `PSS ${ratio(low.memScrolled.pssKiB, auto.memScrolled.pssKiB)}`,
          `fps ${ratio(num(low.scroll.fps), num(auto.scroll.fps))}`,
          `key p50 ${ratio(num(low.keys.p50), num(auto.keys.p50))}`,
          `key p95 ${ratio(num(low.keys.p95), num(auto.keys.p95))}`,
          `CPU while scrolling ${ratio(low.scrollWindow.piCpuPct, auto.scrollWindow.piCpuPct)}`,
          `bytes/s while scrolling ${ratio(low.scrollWindow.downBps, auto.scrollWindow.downBps)}`,
        ].join(', ') +
        '.',
      '',
    );
  }
  lines.push(`The client's processes (qemu-arm running them; first run): ${(r.runs[0]?.processes ?? []).map((p) => `\`${p}\``).join(', ') || 'none seen'}.`, '');
  return `${lines.join('\n')}\n`;
}
