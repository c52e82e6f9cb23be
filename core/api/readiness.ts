/*
 * What GET /ready asks: each probe reports one or more named checks (the store; the
 * key-value store; the agent with the engine, the image, the network and the firewall it
 * sees). Every probe runs at once and is bounded in time, so /ready answers promptly even
 * when a dependency hangs (a SIGSTOPped agent, a black-holed Redis).
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** One check's outcome as /ready's body shows it. */
export type CheckOutcome = { ok: true } | { ok: false; reason: string };

/** Something /ready asks. */
export interface Probe {
  /**
   * The checks it reports, in order. When the probe does not answer (it rejects or times
   * out), the first check fails with the reason and the others are reported as not checked.
   */
  readonly checks: readonly [string, ...string[]];
  /** The reason of each failed check (a check left out passed); rejects when the dependency does not answer. */
  run(): Promise<Partial<Record<string, string>>>;
}

/** A probe's own explanation for an operator (any other rejection reads "does not answer"). */
export class ProbeFailure extends Error {}

export const PROBE_TIMEOUT_MS = 2_000;
const REASON_MAX = 300;

/** A probe of one check that passes when `ping` resolves. */
export function pingProbe(name: string, ping: () => Promise<void>): Probe {
  return {
    checks: [name],
    run: async () => {
      await ping();
      return {};
    },
  };
}

export interface Readiness {
  ready: boolean;
  checks: Record<string, CheckOutcome>;
}

/** Runs every probe at once, each within `timeoutMs`. */
export async function checkReadiness(probes: readonly Probe[], timeoutMs = PROBE_TIMEOUT_MS): Promise<Readiness> {
  const reports = await Promise.all(probes.map((p) => runProbe(p, timeoutMs)));
  const checks: Record<string, CheckOutcome> = {};
  for (const report of reports) Object.assign(checks, report);
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}

async function runProbe(probe: Probe, timeoutMs: number): Promise<Record<string, CheckOutcome>> {
  const [first, ...rest] = probe.checks;
  const timeout = sleep(timeoutMs, { timedOut: true } as const, { ref: false });
  const answer = await Promise.race([
    probe.run().then(
      (reasons) => ({ reasons }),
      (err: unknown) => ({ error: err instanceof ProbeFailure ? err.message : `does not answer${errorCode(err)}` }),
    ),
    timeout,
  ]);
  const out: Record<string, CheckOutcome> = {};
  if ('reasons' in answer) {
    for (const name of probe.checks) {
      const reason = answer.reasons[name];
      out[name] = reason === undefined ? { ok: true } : { ok: false, reason: reason.slice(0, REASON_MAX) };
    }
    return out;
  }
  const why = 'timedOut' in answer ? `did not answer within ${timeoutMs / 1000} s` : answer.error;
  out[first] = { ok: false, reason: why.slice(0, REASON_MAX) };
  for (const name of rest) out[name] = { ok: false, reason: `not checked: ${first} did not answer` };
  return out;
}

/** " (ECONNREFUSED)" for a system error's code, else nothing: never a message that may carry a URL. */
function errorCode(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code) ? ` (${code})` : '';
}

/** "store: …; agent: …" — the failed checks in one line (the error message and the log). */
export function describeFailures(checks: Record<string, CheckOutcome>): string {
  return Object.entries(checks)
    .flatMap(([name, c]) => (c.ok ? [] : [`${name}: ${c.reason}`]))
    .join('; ');
}
