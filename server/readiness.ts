/*
 * What control's /ready checks: the store, the key-value store and, where this node runs
 * sessions, the agent's own readiness report (its `status` method: engine, image, network,
 * firewall), which also shows the agent answering.
 */
import { pingProbe, ProbeFailure, type Probe } from '../core/api/readiness.js';
import type { SessionRuntime } from '../core/sessions/runtime.js';
import type { Database } from '../core/store/database.js';
import type { KeyValueStore } from '../core/store/kv.js';
import { statusResult } from '../lib/agent-protocol.js';

export function readinessProbes(deps: { db: Pick<Database, 'ping'>; kv: Pick<KeyValueStore, 'ping'>; runtime?: SessionRuntime }): Probe[] {
  return [pingProbe('store', () => deps.db.ping()), pingProbe('kv', () => deps.kv.ping()), ...(deps.runtime?.status ? [runtimeProbe(deps.runtime)] : [])];
}

/** agent (it answered), engine, image, network, firewall: as the agent's status reports them. */
export function runtimeProbe(runtime: SessionRuntime): Probe {
  return {
    checks: ['agent', 'engine', 'image', 'network', 'firewall'],
    async run() {
      let raw: unknown;
      try {
        raw = await runtime.status!();
      } catch (err) {
        throw new ProbeFailure(`the session agent does not answer: ${(err as Error).message}`);
      }
      const parsed = statusResult.safeParse(raw);
      if (!parsed.success) {
        // A runtime without the agent's detailed report: its verdict alone.
        const s = raw as { ready?: unknown; reason?: unknown };
        return s.ready === true ? {} : { engine: typeof s.reason === 'string' ? s.reason : 'sessions cannot start' };
      }
      const s = parsed.data;
      if (!s.engineReachable) {
        const skipped = 'not checked: the engine does not answer';
        return { engine: s.reason ?? 'the container engine does not answer', image: skipped, network: skipped, firewall: skipped };
      }
      const reasons: Partial<Record<string, string>> = {
        ...(s.image.present ? {} : { image: `the session image ${s.image.tag} is missing (build it: npm run image, or fix sessions.image)` }),
        ...(s.network.applied ? {} : { network: `the sessions network ${s.network.name} does not exist` }),
        ...(s.firewall.applied ? {} : { firewall: "the sessions' firewall rules are not applied" }),
      };
      // Not ready for a reason none of the checks names: say it on the engine's line.
      if (!s.ready && Object.keys(reasons).length === 0) reasons.engine = s.reason ?? 'sessions cannot start';
      return reasons;
    },
  };
}
