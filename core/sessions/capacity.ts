/*
 * What the admin console's capacity page shows: the host's memory, this instance's sessions
 * against its configured capacity, the pool, and whether the runtime (engine, image,
 * network, firewall) could start a session now.
 */
import { freemem, totalmem } from 'node:os';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import type { SessionsConfig } from '../config/schema.js';
import type { SessionRuntime } from './runtime.js';

export interface CapacitySnapshot {
  instanceId: string;
  host: { memoryTotalMb: number; memoryFreeMb: number };
  /** What `sessions.capacity` allows, pool included. */
  limits: { maxContainers: number; memoryMb: number };
  /** Containers and memory limits in use now (live sessions plus the pool). */
  usage: { containers: number; memoryMb: number };
  /** Live sessions of this instance by state. */
  sessions: { live: number; byState: Record<string, number> };
  pool: { size: number; ready: number; starting: number };
  runtime: {
    ready: boolean;
    reason: string | null;
    /** From the agent when it says (null: not reported). */
    engineReachable: boolean | null;
    image: { tag: string; present: boolean } | null;
  };
  at: string;
}

/** The agent's status carries more than the runtime interface names; read what is there. */
const agentExtras = z.object({
  engineReachable: z.boolean().optional(),
  image: z.object({ tag: z.string(), present: z.boolean() }).optional(),
});

const MB = 1024 * 1024;

export interface CapacityDeps {
  config: Readonly<SessionsConfig>;
  instanceId: string;
  dataSource: DataSource;
  runtime: SessionRuntime;
  usage(): Promise<{ containers: number; memoryMb: number }>;
  pool(): { ready: number; starting: number };
}

async function runtimeStatus(runtime: SessionRuntime): Promise<CapacitySnapshot['runtime']> {
  if (!runtime.status) return { ready: true, reason: null, engineReachable: null, image: null };
  try {
    const s: unknown = await runtime.status();
    const base = s as { ready: boolean; reason: string | null };
    const extra = agentExtras.safeParse(s);
    return {
      ready: base.ready === true,
      reason: typeof base.reason === 'string' ? base.reason : null,
      engineReachable: extra.success ? (extra.data.engineReachable ?? null) : null,
      image: extra.success ? (extra.data.image ?? null) : null,
    };
  } catch (err) {
    return { ready: false, reason: `the session runtime does not answer (${(err as Error).message})`, engineReachable: false, image: null };
  }
}

export async function capacitySnapshot(deps: CapacityDeps): Promise<CapacitySnapshot> {
  const [usage, rows, runtime] = await Promise.all([
    deps.usage(),
    deps.dataSource.query(
      'SELECT state, count(*)::int AS n FROM sessions WHERE instance_id = $1 AND ended_at IS NULL GROUP BY state',
      [deps.instanceId],
    ) as Promise<{ state: string; n: number }[]>,
    runtimeStatus(deps.runtime),
  ]);
  const byState: Record<string, number> = {};
  for (const r of rows) byState[r.state] = Number(r.n);
  const pool = deps.pool();
  return {
    instanceId: deps.instanceId,
    host: { memoryTotalMb: Math.round(totalmem() / MB), memoryFreeMb: Math.round(freemem() / MB) },
    limits: { maxContainers: deps.config.capacity.maxContainers, memoryMb: deps.config.capacity.memoryMb },
    usage,
    sessions: { live: Object.values(byState).reduce((a, b) => a + b, 0), byState },
    pool: { size: deps.config.pool.size, ready: pool.ready, starting: pool.starting },
    runtime,
    at: new Date().toISOString(),
  };
}
