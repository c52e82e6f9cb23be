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
  /** In-flight creates: a reservation per request until the container shows in usage(). */
  private readonly pending = new Map<symbol, number>();

  constructor(
    private readonly limits: AgentLimits,
    private readonly usage: () => Promise<ContainerUsage[]>,
  ) {}

  /** Reserves room for a new container of `memoryMb`; the returned function releases it. */
  admit(memoryMb: number): Promise<() => void> {
    return this.serial(async () => {
      const live = await this.usage();
      const count = live.length + this.pending.size;
      const memory = live.reduce((a, c) => a + c.memoryMb, 0) + [...this.pending.values()].reduce((a, m) => a + m, 0);
      if (count + 1 > this.limits.maxContainers) {
        throw new AgentError('LIMIT_EXCEEDED', `the agent runs at most ${this.limits.maxContainers} containers (${count} live or starting)`);
      }
      if (memory + memoryMb > this.limits.memoryMb) {
        throw new AgentError('LIMIT_EXCEEDED', `memory limits would sum to ${memory + memoryMb} MB, over the agent's ${this.limits.memoryMb} MB`);
      }
      const key = Symbol('create');
      this.pending.set(key, memoryMb);
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
      const memory = live.reduce((a, c) => a + c.memoryMb, 0) + [...this.pending.values()].reduce((a, m) => a + m, 0);
      const total = memory - current + memoryMb;
      if (total > this.limits.memoryMb) {
        throw new AgentError('LIMIT_EXCEEDED', `memory limits would sum to ${total} MB, over the agent's ${this.limits.memoryMb} MB`);
      }
      const key = Symbol('resize');
      this.pending.set(key, Math.max(0, memoryMb - current));
      return () => {
        this.pending.delete(key);
      };
    });
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
