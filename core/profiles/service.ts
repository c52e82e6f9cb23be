/*
 * Persistent profiles as the control plane sees them: whether a user may launch a persist
 * session now (one live persistent session per user: Firefox locks its profile), the volume's
 * size from the user's quota, its usage, and deleting it (the owner's reset, an admin's
 * delete), audited. The volumes themselves are the agent's (agent/profiles.ts).
 */
import { IsNull, type DataSource } from 'typeorm';
import type { ProfileUsage } from '../../lib/agent-protocol.js';
import type { Logger } from '../../lib/log.js';
import type { Audit } from '../auth/audit.js';
import type { Quotas } from '../auth/quotas.js';
import type { SessionsConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import { AgentCallError } from '../sessions/agent-runtime.js';
import { hostError } from '../sessions/host-errors.js';
import { RuntimeUnavailableError, type SessionRuntime } from '../sessions/runtime.js';
import { SessionEntity, type User } from '../store/entities.js';

/** The agent calls a runtime offers when it keeps profiles (AgentRuntime does). */
export interface ProfileAgent {
  profileEnsure(userId: string, sizeMb: number): Promise<{ usage: ProfileUsage; created: boolean; grownFromMb: number | null }>;
  profileUsage(userId: string): Promise<ProfileUsage | null>;
  profileDelete(userId: string): Promise<boolean>;
}

export function profileAgentOf(runtime: SessionRuntime): ProfileAgent | null {
  const r = runtime as SessionRuntime & Partial<ProfileAgent>;
  return typeof r.profileEnsure === 'function' && typeof r.profileUsage === 'function' && typeof r.profileDelete === 'function' ? (r as SessionRuntime & ProfileAgent) : null;
}

export interface LaunchDeps {
  dataSource: DataSource;
  runtime: SessionRuntime;
  quotas: Quotas;
  config: Readonly<SessionsConfig>;
}

/**
 * Before a persist launch: refuses (409 PROFILE_IN_USE) while the user has a live persistent
 * session, then makes sure the volume exists at the quota's size and is mounted.
 */
export async function preparePersistentProfile(deps: LaunchDeps, user: User, log: Logger): Promise<void> {
  const agent = profileAgentOf(deps.runtime);
  if (!agent) throw new AppError('PROFILE_UNAVAILABLE', 'this server keeps no persistent profiles; use profile "ephemeral" (the default)');
  await refuseWhileLive(deps.dataSource, user.id);
  const { quota } = await deps.quotas.describe(user);
  const wanted = quota.profileMb ?? deps.config.profiles.defaultMb;
  // The operator's ceiling wins over a larger quota, as the other caps do.
  const sizeMb = Math.min(wanted, deps.config.profiles.maxMb);
  if (sizeMb < wanted) log.warn({ userId: user.id, wanted, sizeMb }, 'profile quota above sessions.profiles.maxMb; capped');
  await agent.profileEnsure(user.id, sizeMb).catch(agentError(log));
}

export interface ProfileServiceDeps {
  dataSource: DataSource;
  runtime: SessionRuntime;
  audit: Audit;
  logger: Logger;
}

export class ProfileService {
  private readonly log: Logger;

  constructor(private readonly deps: ProfileServiceDeps) {
    this.log = deps.logger.child({ component: 'profiles' });
  }

  /** The volume's size and usage (statfs through the agent); null when the user has none. */
  async usage(userId: string): Promise<ProfileUsage | null> {
    return this.agent().profileUsage(userId).catch(agentError(this.log));
  }

  /** Usage for /v1/quotas: null (and a log line) when the agent cannot answer. */
  async usageOrNull(userId: string): Promise<ProfileUsage | null> {
    return this.usage(userId).catch((err: unknown) => {
      this.log.warn({ userId, err: (err as Error).message }, 'profile usage unavailable');
      return null;
    });
  }

  /** Deletes the user's profile (refused while a session uses it); audited with who asked. */
  async remove(actor: User, userId: string, sourceIp: string | null): Promise<boolean> {
    const agent = this.agent();
    const by = actor.id === userId ? 'owner' : 'admin';
    try {
      await refuseWhileLive(this.deps.dataSource, userId);
      const deleted = await agent.profileDelete(userId).catch(agentError(this.log));
      await this.deps.audit.record({ actor: actor.id, action: 'profile_deleted', target: userId, sourceIp, result: 'success', details: { by, deleted } });
      return deleted;
    } catch (err) {
      if (err instanceof AppError && err.code === 'PROFILE_IN_USE') {
        await this.deps.audit.record({ actor: actor.id, action: 'profile_deleted', target: userId, sourceIp, result: 'failure', details: { by, code: err.code } });
      }
      throw err;
    }
  }

  private agent(): ProfileAgent {
    const agent = profileAgentOf(this.deps.runtime);
    if (!agent) throw new AppError('PROFILE_UNAVAILABLE', 'this server keeps no persistent profiles');
    return agent;
  }
}

/** 409 PROFILE_IN_USE while the user has a live persistent session (Firefox locks its profile). */
export async function refuseWhileLive(dataSource: DataSource, userId: string): Promise<void> {
  const live = await dataSource.getRepository(SessionEntity).findOne({ where: { userId, profile: 'persist', endedAt: IsNull() }, select: { id: true } });
  if (live) {
    throw new AppError('PROFILE_IN_USE', `the persistent profile is in use by session ${live.id}; stop it first`, { details: { session_id: live.id } });
  }
}

/** The API's error for a failed profile call (the runtime's own words stay in the log). */
const agentError = (log: Logger) => (err: unknown): never => {
  if (err instanceof AgentCallError && err.code === 'PROFILE_BUSY') throw new AppError('PROFILE_IN_USE', 'the persistent profile is in use by a live session; stop it first', { cause: err });
  if (err instanceof AgentCallError && err.code === 'LIMIT_EXCEEDED') throw new AppError('PROFILE_UNAVAILABLE', `the profile volume is refused: ${err.message}`, { cause: err });
  if (err instanceof RuntimeUnavailableError) throw hostError('RUNTIME_UNAVAILABLE', 'profile', err, log);
  throw err;
};
