/*
 * The control process's one Prometheus registry (prom-client) and the instruments the code
 * records into. Module-level on purpose: a counter is a fact about the process, and a call
 * site records with one line (`launches.inc(…)`) instead of threading a metrics object
 * through every constructor. Values that live in objects (sessions by state, the pool, the
 * edges' counters, certificates) are set just before a scrape (core/metrics/scrape.ts).
 * Names: `hackstream_` namespace, units in the name (docs/metrics.md lists every series).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

let defaultsOn = false;
/** Node and process metrics (`process_*`, `nodejs_*`); once per process. */
export function enableDefaultMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry });
}

const registers = [registry];

/** How a session got its container: a pre-warmed pool container, or a cold start. */
export type LaunchPath = 'pool' | 'cold';
export type LaunchFailure = 'runtime_unavailable' | 'capacity' | 'start_failed';

export const launchDuration = new Histogram({
  name: 'hackstream_session_launch_duration_seconds',
  help: 'Time from asking for the container (a pool claim or a cold start) to the session ready and routed, by app and path (pool or cold).',
  labelNames: ['app', 'path'] as const,
  buckets: [0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120],
  registers,
});

export const launches = new Counter({
  name: 'hackstream_session_launches_total',
  help: 'Session launches that reached the runtime, by result (success or failure).',
  labelNames: ['result'] as const,
  registers,
});

export const launchFailures = new Counter({
  name: 'hackstream_session_launch_failures_total',
  help: 'Failed session launches, by reason.',
  labelNames: ['reason'] as const,
  registers,
});

export type LoginOutcome = 'success' | 'failure' | 'second_factor_required' | 'throttled';
export const logins = new Counter({
  name: 'hackstream_logins_total',
  help: 'Login attempts (password, second factor, sign-in flows) by outcome.',
  labelNames: ['outcome'] as const,
  registers,
});

export const connectTokensIssued = new Counter({
  name: 'hackstream_connect_tokens_issued_total',
  help: 'One-time connect tokens issued.',
  registers,
});

export const connectTokensRedeemed = new Counter({
  name: 'hackstream_connect_tokens_redeemed_total',
  help: "Connect tokens a session's xpra accepted, counted when control next reads the session's activity (attach checks, idle probes).",
  registers,
});

export const attaches = new Counter({
  name: 'hackstream_session_attaches_total',
  help: 'Sessions that became connected (a client attached and stayed: a connect token was redeemed, or a browser relay opened).',
  registers,
});

export type PluginExtension = 'auth' | 'quota' | 'session_events' | 'audit_sink';
export const pluginErrors = new Counter({
  name: 'hackstream_plugin_errors_total',
  help: 'Errors thrown by (or timeouts of) plugin code, by plugin and extension point.',
  labelNames: ['plugin', 'extension'] as const,
  registers,
});

export const auditSinkDropped = new Counter({
  name: 'hackstream_audit_sink_dropped_total',
  help: 'Audit events an audit sink never received because its queue was full.',
  labelNames: ['plugin'] as const,
  registers,
});

export const agentRpcDuration = new Histogram({
  name: 'hackstream_agent_rpc_duration_seconds',
  help: "Round trip of a call to the agent's RPC, by method and outcome (ok or error).",
  labelNames: ['method', 'outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers,
});

export const auditChainValid = new Gauge({
  name: 'hackstream_audit_chain_valid',
  help: 'Result of the last audit chain verification: 1 intact, 0 broken (absent before the first).',
  registers,
});
export const auditChainVerifiedAt = new Gauge({
  name: 'hackstream_audit_chain_verified_timestamp_seconds',
  help: 'When the audit chain was last verified (Unix time).',
  registers,
});
export const auditChainRows = new Gauge({
  name: 'hackstream_audit_chain_rows',
  help: 'Audit rows found sound by the last verification.',
  registers,
});

// Series a rule divides by exist from the start (a rate of "nothing yet" is 0, not absent).
for (const result of ['success', 'failure']) launches.inc({ result }, 0);
for (const outcome of ['success', 'failure', 'second_factor_required', 'throttled']) logins.inc({ outcome }, 0);

/** Records a launch that became ready; `t0` is performance.now() when it began. */
export function launchSucceeded(app: string, pooled: boolean, t0: number): void {
  launches.inc({ result: 'success' });
  launchDuration.observe({ app, path: pooled ? 'pool' : 'cold' }, (performance.now() - t0) / 1000);
}

export function launchFailed(reason: LaunchFailure): void {
  launches.inc({ result: 'failure' });
  launchFailures.inc({ reason });
}

/** Times an agent call: resolves or rejects as `call` does. */
export function timeAgentCall<T>(method: string, call: Promise<T>): Promise<T> {
  const end = agentRpcDuration.startTimer({ method });
  return call.then(
    (v) => {
      end({ outcome: 'ok' });
      return v;
    },
    (err: unknown) => {
      end({ outcome: 'error' });
      throw err;
    },
  );
}
