/*
 * What each v1 method does once its params passed the schema: the only things a caller can
 * get from the agent. Limits come from the agent's config (limits.ts) and are checked before
 * any engine call; the image, user, mounts, capabilities and network of a container are
 * DockerRuntime's fixed, hardened settings — nothing in a request can change them.
 */
import type { Logger } from '../lib/log.js';
import { AGENT_PROTOCOL_VERSIONS, type AgentLimits, type AgentMethod, type AgentParams, type AgentResults } from '../lib/agent-protocol.js';
import { RuntimeUnavailableError, type RuntimeContainer, type SessionActivity, type SessionRuntime, type SessionSpec } from '../core/sessions/runtime.js';
import type { ContainerUsage, RuntimeStatus } from './docker-runtime.js';
import { AgentError, ContainerStartError } from './errors.js';
import { checkContainerLimits, Ledger } from './limits.js';
import { NetworkIsolationError } from './network.js';
import type { ProfileStore } from './profiles.js';

/** What the agent needs from its runtime: DockerRuntime, or a stand-in in tests. */
export interface AgentEngine extends SessionRuntime {
  /** `profileSource`: the mounted persistent profile to give the container (agent/profiles.ts). */
  create(spec: SessionSpec, opts?: { signal?: AbortSignal; profileSource?: string }): Promise<RuntimeContainer>;
  usage(): Promise<ContainerUsage[]>;
  status(): Promise<RuntimeStatus>;
  activity(containerId: string): Promise<SessionActivity>;
}

/** A profile change the agent made, for its audit trail. */
export type ProfileEvent = { action: 'profile_created' | 'profile_grown' | 'profile_deleted'; userId: string; details: Record<string, number> };

export interface ProfileDeps {
  store: ProfileStore;
  audit(event: ProfileEvent): void;
}

export interface CallContext {
  /** Aborted when the caller's connection closes. */
  signal: AbortSignal;
  progress(line: string): void;
}

const STATUS_TTL_MS = 2_000;

type Handlers = { [M in AgentMethod]: (params: AgentParams[M], ctx: CallContext) => Promise<AgentResults[M]> };

export function agentMethods(engine: AgentEngine, limits: AgentLimits, agentVersion: string, logger: Logger, profiles?: ProfileDeps): Handlers {
  const ledger = new Ledger(limits, () => engine.usage());
  const log = logger.child({ component: 'agent-methods' });
  // /ready may poll often, and a status runs iptables four times: one answer serves 2 s.
  let status: { at: number; value: Promise<RuntimeStatus> } | null = null;
  const currentStatus = (): Promise<RuntimeStatus> => {
    if (!status || Date.now() - status.at > STATUS_TTL_MS) status = { at: Date.now(), value: engine.status() };
    return status.value;
  };
  const handlers: Handlers = {
    hello: async () => ({ agentVersion, protocolVersions: [...AGENT_PROTOCOL_VERSIONS], limits }),
    status: currentStatus,
    async prepare(_p, ctx) {
      status = null;
      try {
        await engine.prepare((line) => ctx.progress(line), ctx.signal);
      } finally {
        status = null;
      }
      return { image: (await currentStatus()).image.tag };
    },
    async create(p, ctx) {
      checkContainerLimits(p.limits, limits);
      if (p.profile === undefined) return start(p, ctx, undefined);
      const store = profileStore();
      // The schema made sure a persist create names its owner.
      return store.withFreeProfile(p.userId ?? '', (source) => start(p, ctx, source));
    },
    async allowToken(p) {
      await engine.allowToken(p.containerId, p.tokenHash, new Date(p.expiresAt));
      return {};
    },
    async claim(p) {
      if (p.limits) checkContainerLimits(p.limits, limits);
      const release = p.limits ? await ledger.resize(p.containerId, p.limits.memoryMb) : () => {};
      try {
        await engine.claim(p.containerId, p.userId, p.url, p.limits);
      } finally {
        release();
      }
      return {};
    },
    async remove(p) {
      await engine.remove(p.containerId);
      return {};
    },
    list: async () => ({ containers: await engine.list() }),
    activity: (p) => engine.activity(p.containerId),
    async profileEnsure(p) {
      const r = await profileStore().ensure(p.userId, p.sizeMb);
      if (r.created) profiles?.audit({ action: 'profile_created', userId: p.userId, details: { sizeMb: r.usage.sizeMb } });
      if (r.grownFromMb !== null) profiles?.audit({ action: 'profile_grown', userId: p.userId, details: { fromMb: r.grownFromMb, toMb: r.usage.sizeMb } });
      return r;
    },
    profileUsage: async (p) => ({ usage: await profileStore().usage(p.userId) }),
    async profileDelete(p) {
      const deleted = await profileStore().remove(p.userId);
      if (deleted) profiles?.audit({ action: 'profile_deleted', userId: p.userId, details: {} });
      return { deleted };
    },
  };
  return handlers;

  function profileStore(): ProfileStore {
    if (!profiles) throw new AgentError('RUNTIME_UNAVAILABLE', 'this agent keeps no persistent profiles');
    return profiles.store;
  }

  async function start(p: AgentParams['create'], ctx: CallContext, profileSource: string | undefined): Promise<AgentResults['create']> {
    const release = await ledger.admit(p.limits.memoryMb, p.sessionId);
    try {
      ctx.signal.throwIfAborted();
      const c = await engine.create(p, { signal: ctx.signal, ...(profileSource !== undefined ? { profileSource } : {}) }).catch((err: unknown) => {
        if (err instanceof RuntimeUnavailableError || err instanceof NetworkIsolationError || err instanceof ContainerStartError) throw err;
        log.warn({ sessionId: p.sessionId, err: (err as Error).message }, 'session container did not start');
        throw new AgentError('START_FAILED', 'the session container did not start (details are in the agent log)');
      });
      // The caller left while the container came up: nobody will ever remove it but us.
      if (ctx.signal.aborted) {
        await engine.remove(c.containerId).catch((err: unknown) => log.error({ containerId: c.containerId, err: (err as Error).message }, 'could not remove an abandoned container'));
        throw new AgentError('INTERNAL', 'the caller disconnected');
      }
      return c;
    } finally {
      release();
    }
  }
}
