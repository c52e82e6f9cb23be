/*
 * What the agent lets its caller ask for, from the agent's own config (the `sessions` section
 * the control plane reads too) and this host — never from the request. A create or a claim
 * outside them is refused before any engine call. The ledger counts the live containers the
 * engine reports plus the creates still in flight, under one lock, so concurrent creates
 * cannot together pass a limit each of them passes alone.
 */
import { availableParallelism } from 'node:os';
import type { SessionsConfig } from '../core/config/schema.js';
import { MAX_TOKEN_TTL_MS, type AgentLimits } from '../lib/agent-protocol.js';
import type { SessionLimits } from '../core/sessions/runtime.js';
import type { ContainerUsage } from './docker-runtime.js';
import { AgentError } from './errors.js';

export function agentLimits(sessions: SessionsConfig, cores = availableParallelism()): AgentLimits {
  return {
    maxContainers: sessions.capacity.maxContainers,
    memoryMb: sessions.capacity.memoryMb,
    pidsLimit: sessions.pidsLimit,
    maxCpus: cores,
    readyTimeoutMs: sessions.readyTimeoutMs,
    maxTokenTtlMs: MAX_TOKEN_TTL_MS,
    maxProfileMb: sessions.profiles.maxMb,
  };
}

/** One container's limits against the per-container ceilings. */
export function checkContainerLimits(l: SessionLimits, limits: AgentLimits): void {
  const over: string[] = [];
  if (l.memoryMb > limits.memoryMb) over.push(`limits.memoryMb ${l.memoryMb} > ${limits.memoryMb}`);
  if (l.cpus > limits.maxCpus) over.push(`limits.cpus ${l.cpus} > ${limits.maxCpus}`);
  if (l.pids > limits.pidsLimit) over.push(`limits.pids ${l.pids} > ${limits.pidsLimit}`);
  if (over.length) throw new AgentError('LIMIT_EXCEEDED', `outside the agent's limits: ${over.join(', ')}`);
}

export class Ledger {
  private lock: Promise<void> = Promise.resolve();
  /** In-flight creates and resizes: a reservation per request until it is released. */
  private readonly pending = new Map<symbol, { memoryMb: number; sessionId: string | null }>();

  constructor(
    private readonly limits: AgentLimits,
    private readonly usage: () => Promise<ContainerUsage[]>,
  ) {}

  /**
   * Reserves room for session `sessionId`'s new container of `memoryMb`; the returned function
   * releases it. Once that container shows in usage() it is counted there, not twice.
   */
  admit(memoryMb: number, sessionId: string): Promise<() => void> {
    return this.serial(async () => {
      const live = await this.usage();
      const { count, memory } = this.totals(live);
      if (count + 1 > this.limits.maxContainers) {
        throw new AgentError('LIMIT_EXCEEDED', `the agent runs at most ${this.limits.maxContainers} containers (${count} live or starting)`);
      }
      if (memory + memoryMb > this.limits.memoryMb) {
        throw new AgentError('LIMIT_EXCEEDED', `memory limits would sum to ${memory + memoryMb} MB, over the agent's ${this.limits.memoryMb} MB`);
      }
      const key = Symbol('create');
      this.pending.set(key, { memoryMb, sessionId });
      return () => {
        this.pending.delete(key);
      };
    });
  }

  /**
   * Reserves the growth of one container's memory to `memoryMb` (a claim's live update) until
   * the returned function is called, once the update is applied.
   */
  resize(containerId: string, memoryMb: number): Promise<() => void> {
    return this.serial(async () => {
      const live = await this.usage();
      const current = live.find((c) => c.containerId === containerId)?.memoryMb ?? 0;
      const { memory } = this.totals(live);
      const total = memory - current + memoryMb;
      if (total > this.limits.memoryMb) {
        throw new AgentError('LIMIT_EXCEEDED', `memory limits would sum to ${total} MB, over the agent's ${this.limits.memoryMb} MB`);
      }
      const key = Symbol('resize');
      this.pending.set(key, { memoryMb: Math.max(0, memoryMb - current), sessionId: null });
      return () => {
        this.pending.delete(key);
      };
    });
  }

  /**
   * Live containers plus reservations, a create's reservation left out once its container is
   * in `live` (a create racing another's admission would otherwise count twice).
   */
  private totals(live: ContainerUsage[]): { count: number; memory: number } {
    const shown = new Set(live.map((c) => c.sessionId).filter((id) => id !== ''));
    const open = [...this.pending.values()].filter((p) => p.sessionId === null || !shown.has(p.sessionId));
    return {
      count: live.length + open.filter((p) => p.sessionId !== null).length,
      memory: live.reduce((a, c) => a + c.memoryMb, 0) + open.reduce((a, p) => a + p.memoryMb, 0),
    };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
