/** Turns the benchmark's per-round results into the Markdown tables of docs/benchmarks.md. */
import { median } from './proc.js';

export interface RoundResult {
  wrkPerSecond: number;
  wrkErrors: number;
  wrkRequests: number;
  nodePerSecond: number;
  nodeErrors: number;
  latP50: number;
  latP90: number;
  latP99: number;
  hsP50: number;
  downMBs: number;
  upMBs: number;
  /** Router CPU ms per 1,000 connections (wrk phase) and CPU s per GB relayed (bulk phases). */
  cpuPer1k: number;
  cpuPerGB: number;
  /**
   * User CPU used meanwhile by processes outside the benchmark, in % of the machine: other people's
   * work on a shared box. Rounds with a high figure are suspect.
   */
  foreignCpuPct: number;
}

export interface IdleResult {
  /** RSS of the router's processes at rest and with the idle tunnels open (after a full GC for Node). */
  before: number;
  after: number;
  /** RSS with the tunnels open, as found (no forced GC). */
  rawAfter: number;
  /** Summed PSS with the tunnels open (nginx: shared pages counted once). */
  pssAfter: number;
  perTunnelKB: number;
  /** Node routers: JS heap + external memory retained per tunnel, after a full GC (RSS of a V8 process moves in steps). */
  jsPerTunnelKB: number;
}

export type Results = Record<string, RoundResult[]>;

const MiB = 1024 * 1024;
export const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '–');

const range = (rs: RoundResult[], k: keyof RoundResult, d = 0) => {
  const v = rs.map((r) => r[k]).filter(Number.isFinite);
  return v.length > 1 ? ` [${f(Math.min(...v), d)}–${f(Math.max(...v), d)}]` : '';
};

/** Median over rounds of a per-round value computed from two targets measured in the same round. */
function paired(a: RoundResult[], b: RoundResult[], fn: (x: RoundResult, y: RoundResult) => number): number {
  return median(a.map((x, i) => (b[i] ? fn(x, b[i]) : NaN)).filter(Number.isFinite));
}

export function targetTable(results: Results, idle: Record<string, IdleResult>, o: { concurrency: number; idle: number }): string {
  const rows = [
    `| target | new TLS conn/s, wrk C=${o.concurrency} | new conn/s, Node client C=${o.concurrency} | latency p50 / p90 / p99 (ms) | added p50 / p99 vs direct (ms) | handshake p50 (ms) | bulk down MB/s | bulk up MB/s | router CPU ms / 1k conns | router CPU s / GB | RSS at rest → with ${o.idle} idle tunnels (MiB) | RSS per tunnel (KiB) | foreign CPU % (max) |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const direct = results.direct ?? [];
  for (const [t, rs] of Object.entries(results)) {
    const med = (k: keyof RoundResult) => median(rs.map((r) => r[k]));
    // Added latency: target − direct in the same round (drift cancels), then the median.
    const added = (k: 'latP50' | 'latP99') => paired(rs, direct, (x, y) => x[k] - y[k]);
    const i = idle[t];
    const mem = i ? `${f(i.before / MiB, 1)} → ${f(i.after / MiB, 1)} (as found ${f(i.rawAfter / MiB, 1)}${t === 'nginx' ? `, PSS ${f(i.pssAfter / MiB, 1)}` : ''})` : '–';
    rows.push(
      `| ${t} | **${f(med('wrkPerSecond'))}**${range(rs, 'wrkPerSecond')} | ${f(med('nodePerSecond'))}${range(rs, 'nodePerSecond')} ` +
        `| ${f(med('latP50'), 3)} / ${f(med('latP90'), 3)} / ${f(med('latP99'), 3)} ` +
        `| ${t === 'direct' ? '–' : `${f(added('latP50'), 3)} / ${f(added('latP99'), 3)}`} | ${f(med('hsP50'), 3)} ` +
        `| **${f(med('downMBs'))}**${range(rs, 'downMBs')} | **${f(med('upMBs'))}**${range(rs, 'upMBs')} ` +
        `| ${f(med('cpuPer1k'))} | ${f(med('cpuPerGB'), 2)} | ${mem} | ${i ? `${f(i.perTunnelKB, 1)}${Number.isFinite(i.jsPerTunnelKB) ? ` (JS heap ${f(i.jsPerTunnelKB, 1)})` : ''}` : '–'} | ${f(Math.max(...rs.map((r) => r.foreignCpuPct)), 1)} |`,
    );
  }
  return rows.join('\n');
}

export interface Figure {
  name: string;
  gateway: number;
  nginx: number;
  /** gateway/nginx as the median of per-round ratios (same round, so machine drift cancels). */
  ratio: number;
  /** Oriented so that ≥ 0.8 meets the goal: the ratio for higher-is-better figures, its inverse otherwise. */
  score: number;
  vsDirect: number;
}

export function figures(results: Results, idle: Record<string, IdleResult>, target = 'gateway'): Figure[] {
  const g = results[target] ?? [];
  const n = results.nginx ?? [];
  const d = results.direct ?? [];
  const out: Figure[] = [];
  const add = (name: string, k: keyof RoundResult, higherBetter: boolean) => {
    const ratio = paired(g, n, (x, y) => x[k] / y[k]);
    out.push({
      name,
      gateway: median(g.map((r) => r[k])),
      nginx: median(n.map((r) => r[k])),
      ratio,
      score: higherBetter ? ratio : 1 / ratio,
      vsDirect: paired(g, d, (x, y) => x[k] / y[k]),
    });
  };
  add('new TLS conn/s (wrk)', 'wrkPerSecond', true);
  add('new TLS conn/s (Node client)', 'nodePerSecond', true);
  add('connect → first byte p50 (ms)', 'latP50', false);
  add('connect → first byte p99 (ms)', 'latP99', false);
  // Added latency: a ratio of two small differences is noise unless both are clearly above zero.
  for (const k of ['latP50', 'latP99'] as const) {
    const ga = paired(g, d, (x, y) => x[k] - y[k]);
    const na = paired(n, d, (x, y) => x[k] - y[k]);
    const ok = ga > 0.02 && na > 0.02;
    out.push({ name: `added latency ${k === 'latP50' ? 'p50' : 'p99'} (ms)`, gateway: ga, nginx: na, ratio: ok ? ga / na : NaN, score: ok ? na / ga : NaN, vsDirect: NaN });
  }
  add('bulk down MB/s', 'downMBs', true);
  add('bulk up MB/s', 'upMBs', true);
  add('router CPU ms per 1k conns', 'cpuPer1k', false);
  add('router CPU s per GB', 'cpuPerGB', false);
  const gi = idle[target];
  const ni = idle.nginx;
  if (gi && ni) {
    out.push({ name: 'RSS with the idle tunnels, as found (MiB)', gateway: gi.rawAfter / MiB, nginx: ni.rawAfter / MiB, ratio: gi.rawAfter / ni.rawAfter, score: ni.rawAfter / gi.rawAfter, vsDirect: NaN });
    out.push({ name: 'RSS added per idle tunnel (KiB)', gateway: gi.perTunnelKB, nginx: ni.perTunnelKB, ratio: gi.perTunnelKB / ni.perTunnelKB, score: ni.perTunnelKB / gi.perTunnelKB, vsDirect: NaN });
    // nginx has no GC; its RSS delta is what it holds per tunnel. Compared with Node's retained JS memory per tunnel.
    out.push({ name: 'retained per idle tunnel: JS heap + external vs nginx RSS (KiB)', gateway: gi.jsPerTunnelKB, nginx: ni.perTunnelKB, ratio: gi.jsPerTunnelKB / ni.perTunnelKB, score: ni.perTunnelKB / gi.jsPerTunnelKB, vsDirect: NaN });
  }
  return out;
}

export function figureTable(fs: Figure[], target = 'gateway'): string {
  return [
    `| figure | ${target} | nginx | ${target}/nginx | score (≥ 0.8 meets the goal) | ${target}/direct |`,
    '|---|---|---|---|---|---|',
    ...fs.map((x) => {
      const mark = Number.isNaN(x.score) ? '' : x.score >= 0.8 ? ' ✓' : ' ✗';
      return `| ${x.name} | ${f(x.gateway, 3)} | ${f(x.nginx, 3)} | ${f(x.ratio, 2)} | ${f(x.score, 2)}${mark} | ${f(x.vsDirect, 2)} |`;
    }),
  ].join('\n');
}
