/* Percentiles and the shapes of the bench's results (shared by bench.ts and report.ts). */

export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};

export interface Summary {
  p50: number;
  p95: number;
  min: number;
  max: number;
  runs: number[];
}

export const summary = (xs: number[]): Summary => ({
  p50: Math.round(pct(xs, 50)),
  p95: Math.round(pct(xs, 95)),
  min: Math.round(Math.min(...xs)),
  max: Math.round(Math.max(...xs)),
  runs: xs.map(Math.round),
});

export interface Window {
  seconds: number;
  /** Bytes per second, client side, of the xpra client's connection to the gateway. */
  downBps: number;
  upBps: number;
  /** % of one core over the window. */
  wrapperCpu: number;
  xpraCpu: number;
}

export interface Attached {
  quality: string;
  round: number;
  /**
   * Which wrapper ran: "tsx" (bin/hackstream in a checkout, its CLI run with tsx), "bundle" (the
   * .deb's /usr/bin/hackstream: the same shell, its CLI the esbuild bundle) or "tsc" (tsc's output).
   */
  cli: 'tsx' | 'bundle' | 'tsc';
  /** The wrapper's command line (a shell running bin/hackstream) and its children's commands while attached. */
  wrapperCommand: string;
  wrapperChildren: string[];
  /** Node processes seen under the wrapper in any reading while attached (should be none). */
  nodeWhileAttached: string[];
  /** Peak RSS (VmHWM) of the Node CLI during the launch, before it handed xpra over, KiB (0: not seen). */
  nodeLaunchPeakKiB: number;
  /** The wrapper's, KiB, read at the end of the idle window. */
  wrapperRssKiB: number;
  wrapperHwmKiB: number;
  xpraRssKiB: number;
  xpraHwmKiB: number;
  /** Command lines of the xpra client's process tree (its RSS and CPU are summed over them). */
  xpraProcesses: string[];
  idle: Window;
  scroll: Window;
  /** The colour block left the screen while scrolling (the wheel did scroll the page). */
  scrolled: boolean;
}
