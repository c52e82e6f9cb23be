import type Router from '@koa/router';
import type { Logger } from '../../lib/log.js';
import { createAuditFanout, type AuditLimits, type HostAudit } from './audit-fanout.js';
import { createAuthChain, type HostAuth } from './auth-chain.js';
import type { PluginRouteState, PluginServices } from './contract.js';
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

/** Core's only door to plugins: core calls these, never a plugin directly. */
export interface PluginHost {
  /** Enabled plugins in init order. */
  readonly plugins: readonly { readonly name: string; readonly version: string }[];
  readonly auth: HostAuth;
  readonly quota: HostQuota;
  readonly audit: HostAudit;
  readonly sessions: HostSessions;
  /** Mounts each plugin's router under `/v1/plugins/<name>` on `router`. Call once. */
  mountRoutes<S extends PluginRouteState>(router: Router<S>): void;
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
    mountRoutes(router) {
      for (const { plugin, value } of reg.routers) router.use(`/v1/plugins/${plugin}`, value.routes(), value.allowedMethods());
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
