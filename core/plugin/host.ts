import type Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';
import type { Logger } from '../../lib/log.js';
import { createAuditFanout, type AuditLimits, type HostAudit } from './audit-fanout.js';
import { createAuthChain, type HostAuth } from './auth-chain.js';
import type { PluginPrincipal, PluginServices } from './contract.js';
import { closePlugins, initPlugins } from './lifecycle.js';
import { loadPlugins, type LoadedPlugin, type LoadOptions } from './loader.js';
import { createQuotaGate, type HostQuota } from './quota-gate.js';
import { emptyRegistrations } from './registrations.js';
import { createSessionEvents, type HostSessions } from './session-events.js';
import type { StorageProvider } from './storage.js';

export interface HostLimits {
  /** Per plugin init. */
  readonly initTimeoutMs: number;
  /** Per plugin close. */
  readonly closeTimeoutMs: number;
  /** Per auth provider and quota policy call; a late answer counts as a failure (fail closed). */
  readonly callTimeoutMs: number;
  readonly audit: AuditLimits;
  /** How long shutdown waits for audit sinks to write what is queued. */
  readonly auditDrainMs: number;
}

export const DEFAULT_HOST_LIMITS: HostLimits = Object.freeze({
  initTimeoutMs: 10_000,
  closeTimeoutMs: 5_000,
  callTimeoutMs: 10_000,
  audit: Object.freeze({ queueMax: 1_000, writeTimeoutMs: 5_000 }),
  auditDrainMs: 2_000,
});

export interface PluginHostOptions {
  readonly logger: Logger;
  readonly services: PluginServices;
  /** Plugin storage (SQL schema + KV); without it a plugin with migrations is refused and storage calls fail. */
  readonly storage?: StorageProvider;
  readonly limits?: Partial<HostLimits>;
}

/** Who calls a plugin route: core resolves it (bearer token, client address) for the host. */
export type CallerResolver<S> = (ctx: RouterContext<S>) => Promise<{ readonly principal: PluginPrincipal | null; readonly ip: string }>;

/** Core's only door to plugins: core calls these, never a plugin directly. */
export interface PluginHost {
  /** Enabled plugins in init order. */
  readonly plugins: readonly { readonly name: string; readonly version: string }[];
  readonly auth: HostAuth;
  readonly quota: HostQuota;
  readonly audit: HostAudit;
  readonly sessions: HostSessions;
  /**
   * Mounts each plugin's router under `/v1/plugins/<name>` on `router`. Call once. `caller`
   * tells who calls (principal or null, client address); it is put in `ctx.state` first.
   */
  mountRoutes<S>(router: Router<S>, caller: CallerResolver<S>): void;
  /** Drains audit sinks (bounded), then closes plugins in reverse init order. Idempotent. */
  close(): Promise<void>;
}

/**
 * Initialises already loaded plugins (see `loadPlugins`) in order and returns the host.
 * After it resolves no plugin can register anything.
 */
export async function startPluginHost(loaded: readonly LoadedPlugin[], opts: PluginHostOptions): Promise<PluginHost> {
  const limits = { ...DEFAULT_HOST_LIMITS, ...opts.limits };
  const logger = opts.logger;
  const reg = emptyRegistrations();
  const started = await initPlugins(loaded, { logger, services: opts.services, registrations: reg, ...(opts.storage ? { storage: opts.storage } : {}), ...limits });
  const audit = createAuditFanout([...reg.auditSinks], logger, limits.audit);
  let closing: Promise<void> | undefined;
  const host: PluginHost = {
    plugins: Object.freeze(started.map(({ name, version }) => Object.freeze({ name, version }))),
    auth: createAuthChain(reg, logger, limits.callTimeoutMs),
    quota: createQuotaGate(reg.quotaPolicy, logger, limits.callTimeoutMs),
    audit: { emit: (event) => audit.emit(event) },
    sessions: createSessionEvents([...reg.sessionListeners], logger),
    mountRoutes<S>(router: Router<S>, caller: CallerResolver<S>) {
      const identify: RouterMiddleware<S> = async (ctx, next) => {
        const { principal, ip } = await caller(ctx);
        // A copy with only the contract's fields: core's principal carries the user's row.
        const state = ctx.state as unknown as Record<string, unknown>;
        state.principal = principal ? Object.freeze({ userId: principal.userId, username: principal.username, role: principal.role }) : null;
        state.ip = ip;
        // For the request's log line (core's request context reads it on the way out).
        if (principal) state.userId = principal.userId;
        return next();
      };
      for (const { plugin, value } of reg.routers) {
        // The plugin's router sees the same context; its state type is the contract's view of it.
        const routes = value.routes() as unknown as RouterMiddleware<S>;
        const allowed = value.allowedMethods() as unknown as RouterMiddleware<S>;
        router.use(`/v1/plugins/${plugin}`, identify, routes, allowed);
      }
    },
    close() {
      closing ??= audit.drain(limits.auditDrainMs).then(() => closePlugins(started, limits));
      return closing;
    },
  };
  logger.info({ plugins: host.plugins.map((p) => p.name) }, 'plugins started');
  return Object.freeze(host);
}

/** `loadPlugins` + `startPluginHost`: validates the `plugins` config section, then initialises. */
export async function startPlugins(
  enabled: Readonly<Record<string, unknown>>,
  opts: PluginHostOptions & LoadOptions,
): Promise<PluginHost> {
  return startPluginHost(await loadPlugins(enabled, opts), opts);
}
