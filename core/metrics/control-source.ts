/*
 * Control's scrape source: what a scrape reads from the edges, the store, the pool and the
 * certificates. A part that cannot be read now (the store is down) keeps its last value, so
 * a scrape still answers with the process's own metrics and the rest.
 */
import type { DataSource } from 'typeorm';
import type { GatewayMetricsSnapshot } from '../../lib/edge-metrics.js';
import type { Logger } from '../../lib/log.js';
import type { SessionsConfig } from '../config/schema.js';
import type { ScrapeSnapshot, ScrapeSource } from './scrape.js';

export interface ControlSourceDeps {
  /** The edges' counters, fresh (asks each edge over the link). */
  gateway: () => Promise<GatewayMetricsSnapshot>;
  dataSource: DataSource;
  instanceId: string;
  config: Readonly<Pick<SessionsConfig, 'pool' | 'capacity'>>;
  /** Ready pool containers. */
  poolReady: () => number;
  /** Containers and memory in use (sessions and pool). */
  usage: () => Promise<{ containers: number; memoryMb: number }>;
  /** PEM by name, read at each scrape (the API certificate renews). */
  certificates: () => Record<string, string>;
  passwordHashEvaluations: () => number;
  logger: Logger;
}

export function controlScrapeSource(deps: ControlSourceDeps): ScrapeSource {
  let last: { sessions: ScrapeSnapshot['sessions']; usage: { containers: number; memoryMb: number } } = { sessions: {}, usage: { containers: 0, memoryMb: 0 } };
  const fromStore = async () => {
    try {
      const rows: { state: string; n: number }[] = await deps.dataSource.query(
        'SELECT state, count(*)::int AS n FROM sessions WHERE instance_id = $1 AND ended_at IS NULL GROUP BY state',
        [deps.instanceId],
      );
      last = { sessions: Object.fromEntries(rows.map((r) => [r.state, r.n])), usage: await deps.usage() };
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, 'metrics: could not read sessions from the store; serving the last values');
    }
    return last;
  };
  return {
    async snapshot() {
      const [gateway, store] = await Promise.all([deps.gateway().catch(() => null), fromStore()]);
      const cap = deps.config.capacity;
      return {
        gateway,
        sessions: store.sessions,
        pool: { target: deps.config.pool.size, ready: deps.poolReady() },
        capacity: { containers: store.usage.containers, maxContainers: cap.maxContainers, memoryMb: store.usage.memoryMb, memoryCapacityMb: cap.memoryMb },
        certificates: deps.certificates(),
        passwordHashEvaluations: deps.passwordHashEvaluations(),
      };
    },
  };
}
