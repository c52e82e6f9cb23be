/*
 * FakeRuntime: a FAKE SessionRuntime for unit tests of the sessions core. It runs nothing:
 * "containers" are entries in a map, a create resolves at once (or when the test releases
 * it), exits happen when the test calls exit(), and `unavailable` makes every call fail as
 * an unreachable engine would. Integration tests use the real runtime (the agent + Docker).
 */
import { randomBytes } from 'node:crypto';
import {
  RuntimeCallError,
  RuntimeUnavailableError,
  type ContainerExit,
  type RuntimeContainer,
  type SessionActivity,
  type SessionLimits,
  type SessionRuntime,
  type SessionSpec,
} from '../../core/sessions/runtime.js';
import { queryAudit } from '../../core/audit/query.js';
import { createAudit } from '../../core/auth/audit.js';
import { PasswordHasher } from '../../core/auth/passwords.js';
import type { Quotas } from '../../core/auth/quotas.js';
import { Users } from '../../core/auth/users.js';
import { sessionsSchema } from '../../core/config/schema.js';
import type { Quota, SessionEvent } from '../../core/plugin/contract.js';
import { SessionManager } from '../../core/sessions/manager.js';
import { SessionEntity, type Session, type User } from '../../core/store/entities.js';
import { silentLogger } from '../../lib/log.js';
import { MemoryRouteTable } from '../../lib/route-table.js';
import { FAST_ARGON2 } from './api.js';
import type { SessionsInput } from './sessions.js';
import { openTestDatabase, openTestKv, type TestDatabase } from './store.js';

export interface FakeContainer extends RuntimeContainer {
  spec: SessionSpec;
  limits: SessionLimits;
  claimedBy: string | null;
  tokens: string[];
  /** What activity() answers for it (as xpra would): default no client attached. */
  activity: SessionActivity;
}

export type FakeCall = 'prepare' | 'create' | 'claim' | 'allowToken' | 'remove' | 'list' | 'activity';

export class FakeRuntime implements SessionRuntime {
  readonly containers = new Map<string, FakeContainer>();
  readonly calls: Array<{ method: FakeCall; containerId?: string; sessionId?: string }> = [];
  /** Every call rejects with RuntimeUnavailableError (an engine outage). */
  unavailable = false;
  /** Calls of these methods reject with RuntimeUnavailableError (a partial outage). */
  readonly failing = new Set<FakeCall>();
  /** The next create rejects with this (then clears). */
  failNextCreate: Error | undefined;
  /** While set, creates wait for it (a slow start the test controls). */
  createGate: Promise<void> | undefined;
  private readonly exitListeners = new Set<(e: ContainerExit) => void>();
  private nextIp = 2;

  private check(method: FakeCall): void {
    if (this.unavailable || this.failing.has(method)) throw new RuntimeUnavailableError(`fake runtime: ${method} while the engine is unreachable`);
  }

  async prepare(): Promise<void> {
    this.calls.push({ method: 'prepare' });
    this.check('prepare');
  }

  async create(spec: SessionSpec): Promise<RuntimeContainer> {
    this.calls.push({ method: 'create', sessionId: spec.sessionId });
    this.check('create');
    if (this.createGate) await this.createGate;
    if (this.failNextCreate) {
      const err = this.failNextCreate;
      this.failNextCreate = undefined;
      throw err;
    }
    const c: FakeContainer = {
      containerId: randomBytes(32).toString('hex'),
      sessionId: spec.sessionId,
      userId: spec.userId ?? null,
      pooled: spec.pooled === true,
      running: true,
      upstream: { host: `10.99.0.${this.nextIp++}`, port: 14500 },
      spec,
      limits: spec.limits,
      claimedBy: null,
      tokens: [],
      activity: { clients: 0, idleSeconds: null, tokensSpent: 0 },
    };
    this.containers.set(c.containerId, c);
    return this.view(c);
  }

  async allowToken(containerId: string, tokenHash: string): Promise<void> {
    this.calls.push({ method: 'allowToken', containerId });
    this.check('allowToken');
    const c = this.running(containerId);
    c.tokens.push(tokenHash);
  }

  async claim(containerId: string, userId: string, _url?: string, limits?: SessionLimits): Promise<void> {
    this.calls.push({ method: 'claim', containerId });
    this.check('claim');
    const c = this.running(containerId);
    c.claimedBy = userId;
    if (limits) c.limits = limits;
  }

  async remove(containerId: string): Promise<void> {
    this.calls.push({ method: 'remove', containerId });
    this.check('remove');
    this.containers.delete(containerId);
  }

  async list(): Promise<RuntimeContainer[]> {
    this.calls.push({ method: 'list' });
    this.check('list');
    return [...this.containers.values()].map((c) => this.view(c));
  }

  async activity(containerId: string): Promise<SessionActivity> {
    this.calls.push({ method: 'activity', containerId });
    this.check('activity');
    return { ...this.running(containerId).activity };
  }

  onExit(listener: (exit: ContainerExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.exitListeners.clear();
  }

  // ---- what tests do to it ----------------------------------------------------------------

  /** The container stops on its own (a crash, OOM, a clean exit) and the engine reports it. */
  exit(containerId: string, exitCode: number | null, oomKilled = false): void {
    const c = this.containers.get(containerId);
    if (!c) throw new Error(`fake runtime: no container ${containerId}`);
    c.running = false;
    for (const l of this.exitListeners) l({ containerId, sessionId: c.sessionId, exitCode, oomKilled });
  }

  /** A container that appears as if an earlier run (or a failed removal) left it. */
  plant(sessionId: string, opts: { pooled?: boolean; running?: boolean } = {}): FakeContainer {
    const c: FakeContainer = {
      containerId: randomBytes(32).toString('hex'),
      sessionId,
      userId: null,
      pooled: opts.pooled === true,
      running: opts.running ?? true,
      upstream: { host: `10.99.0.${this.nextIp++}`, port: 14500 },
      spec: { sessionId, limits: { memoryMb: 256, cpus: 1, pids: 64 }, policy: NO_POLICY, tls: { certPem: '', keyPem: '' } },
      limits: { memoryMb: 256, cpus: 1, pids: 64 },
      claimedBy: null,
      tokens: [],
      activity: { clients: 0, idleSeconds: null, tokensSpent: 0 },
    };
    this.containers.set(c.containerId, c);
    return c;
  }

  bySession(sessionId: string): FakeContainer | undefined {
    return [...this.containers.values()].find((c) => c.sessionId === sessionId);
  }

  pooled(): FakeContainer[] {
    return [...this.containers.values()].filter((c) => c.pooled && c.claimedBy === null);
  }

  private running(containerId: string): FakeContainer {
    const c = this.containers.get(containerId);
    if (!c?.running) throw new RuntimeCallError('other', `fake runtime: container ${containerId.slice(0, 12)} is not running`);
    return c;
  }

  private view(c: FakeContainer): RuntimeContainer {
    return { containerId: c.containerId, sessionId: c.sessionId, userId: c.userId, pooled: c.pooled, running: c.running, upstream: c.running ? c.upstream : null };
  }
}

const NO_POLICY = { clipboard: false, fileTransfer: false, printing: false, audio: false, webcam: false, downloads: false, fileUrls: false };

// ---- the sessions core on the real store with this fake runtime --------------------------

export interface FakeTunnels {
  onTunnelChange(l: (hostname: string, open: number) => void): () => void;
  tunnelCount(hostname: string): number;
  /** As the edge reports it: `open` tunnels to `hostname` now. */
  set(hostname: string, open: number): void;
}

export function fakeTunnels(): FakeTunnels {
  const counts = new Map<string, number>();
  const listeners = new Set<(hostname: string, open: number) => void>();
  return {
    onTunnelChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    tunnelCount: (h) => counts.get(h) ?? 0,
    set(h, open) {
      counts.set(h, open);
      for (const l of listeners) l(h, open);
    },
  };
}

export const FAKE_QUOTA: Quota = { maxSessions: 10, cpus: 1, memoryMb: 512, idleTimeoutMinutes: 60, maxDurationMinutes: 60, storageMb: 0 };

export interface FakeSessions {
  manager: SessionManager;
  runtime: FakeRuntime;
  routes: MemoryRouteTable;
  tunnels: FakeTunnels;
  db: TestDatabase;
  events: SessionEvent[];
  user: User;
  /** Another user (for endUserSessions). */
  other: User;
  users: Users;
  /** Resolves with the first event (past or future) that matches. */
  event(pred: (e: SessionEvent) => boolean, ms?: number): Promise<SessionEvent>;
  /** Polls until `check` answers a value (not undefined), or rejects after `ms`. */
  until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms?: number): Promise<T>;
  row(id: string): Promise<Session>;
  audit(target: string, action?: string): Promise<AuditEntryView[]>;
  close(): Promise<void>;
}

export type AuditEntryView = { action: string; actor: string | null; details: Record<string, unknown> };

/**
 * A SessionManager on a real PostgreSQL schema of its own (real audit, real transactions),
 * the memory route table and KV, and a FakeRuntime. `start` (default true) starts it.
 */
export async function startFakeSessions(overrides: Partial<SessionsInput> = {}, opts: { start?: boolean; runtime?: FakeRuntime; db?: TestDatabase } = {}): Promise<FakeSessions> {
  const db = opts.db ?? (await openTestDatabase('postgres'));
  const kv = (await openTestKv('memory')).kv;
  const runtime = opts.runtime ?? new FakeRuntime();
  const routes = new MemoryRouteTable();
  const tunnels = fakeTunnels();
  const audit = createAudit(db.db.dataSource);
  const users = new Users(db.db.dataSource, new PasswordHasher(FAST_ARGON2, { concurrency: 1, queueMax: 10 }), audit, async () => {});
  const system = { id: 'system', ip: null };
  const find = async (name: string) => (await users.findByUsername(name)) ?? users.create({ username: name, password: `${name} password 12345`, role: 'user' }, system);
  const user = await find('fake-alice');
  const other = await find('fake-bob');
  const quotas: Quotas = {
    describe: async () => ({ quota: FAKE_QUOTA, usage: { sessions: 0, storageMb: 0 } }),
    admit: (_u, _r, claim) => claim(),
  };
  const events: SessionEvent[] = [];
  const waiters = new Set<() => void>();
  const config = sessionsSchema.parse({ pool: { size: 0 }, sweepIntervalMs: 100, reconcileIntervalSeconds: 1, instanceId: 'fake-instance', ...overrides });
  const manager = new SessionManager({
    config,
    sessionDomain: 'sessions.test',
    publicHost: 'hs.test',
    connectPort: () => 443,
    instanceId: config.instanceId ?? 'fake-instance',
    logger: silentLogger(),
    dataSource: db.db.dataSource,
    kv,
    routes,
    runtime,
    certs: { caPem: 'fake CA', issue: async () => ({ certPem: 'fake cert', keyPem: 'fake key' }) },
    quotas,
    audit,
    emit: (e) => {
      events.push(e);
      for (const w of waiters) w();
    },
    tunnels,
  });
  if (opts.start !== false) manager.start();
  const until = async <T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    manager,
    runtime,
    routes,
    tunnels,
    db,
    events,
    user,
    other,
    users,
    event: (pred, ms = 10_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find(pred);
          if (!found) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no such session event within ${ms} ms; seen: ${events.map((e) => `${e.type}:${e.sessionId.slice(0, 8)}`).join(' ')}`));
        }, ms);
        waiters.add(check);
        check();
      }),
    until,
    async row(id) {
      const r = await db.db.dataSource.getRepository(SessionEntity).findOneBy({ id });
      if (!r) throw new Error(`no session row ${id}`);
      return r;
    },
    async audit(target, action) {
      const page = await queryAudit(db.db.dataSource, { user: target, limit: 200, ...(action ? { action } : {}) });
      return page.items.map((i) => ({ action: i.action, actor: i.actor, details: i.details })).reverse();
    },
    async close() {
      await manager.close();
      await kv.close();
      if (!opts.db) await db.cleanup();
    },
  };
}
