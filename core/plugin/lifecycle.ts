import type { Logger } from '../../lib/log.js';
import type { Plugin, PluginContext, PluginHandle, PluginServices, PluginStorage } from './contract.js';
import { describe, PluginError } from './errors.js';
import type { LoadedPlugin } from './loader.js';
import { openRegistrar, type Registrations } from './registrations.js';
import { noStorage, type StorageProvider } from './storage.js';
import { TimeoutError, withTimeout } from './timeout.js';

/** A plugin whose init succeeded. */
export interface Started {
  readonly name: string;
  readonly version: string;
  readonly logger: Logger;
  readonly handle: PluginHandle | undefined;
}

export interface LifecycleDeps {
  readonly logger: Logger;
  readonly services: PluginServices;
  /** Each plugin's storage (migrations applied); without one a plugin with migrations is refused. */
  readonly storage?: StorageProvider;
  readonly registrations: Registrations;
  readonly initTimeoutMs: number;
  readonly closeTimeoutMs: number;
}

/**
 * Calls every init in the given (dependency) order. When one fails or times out, the
 * plugins already initialised are closed in reverse and a PluginError naming it is thrown.
 */
export async function initPlugins(loaded: readonly LoadedPlugin[], deps: LifecycleDeps): Promise<Started[]> {
  // Every plugin's schema is brought up to date before any init: a failing migration stops
  // start-up with nothing initialised.
  const storage: PluginStorage[] = [];
  for (const { plugin } of loaded) storage.push(await (deps.storage ?? noStorage)(plugin));
  const started: Started[] = [];
  for (const [i, entry] of loaded.entries()) {
    try {
      started.push(await initOne(entry, storage[i] as PluginStorage, deps));
    } catch (err) {
      await closePlugins(started, deps);
      throw err;
    }
  }
  return started;
}

async function initOne({ plugin, options, source }: LoadedPlugin, storage: PluginStorage, deps: LifecycleDeps): Promise<Started> {
  const { name, version } = plugin;
  const logger = deps.logger.child({ plugin: name });
  const { registrar, seal } = openRegistrar(name, deps.registrations);
  const services = servicesFor(plugin, deps.services);
  const ctx: PluginContext<unknown> = Object.freeze({ logger, config: options, register: registrar, services, storage });
  const pending = Promise.resolve().then(() => plugin.init(ctx));
  try {
    const handle = await withTimeout(deps.initTimeoutMs, () => pending);
    if (handle !== undefined && typeof (handle as Partial<PluginHandle> | null)?.close !== 'function') {
      throw new Error('init must resolve to nothing or to an object with a close() method');
    }
    logger.info({ version, ...(source ? { source } : {}) }, 'plugin initialised');
    return { name, version, logger, handle: handle ?? undefined };
  } catch (err) {
    if (err instanceof TimeoutError) closeWhenSettled(pending, logger);
    throw new PluginError(name, `plugin "${name}" failed to initialise: ${describe(err)}`, { cause: err });
  } finally {
    seal();
  }
}

/** The audit action prefix of a plugin: its name with - as _, then a dot (`mfa-totp` → `mfa_totp.`). */
export function auditPrefix(plugin: string): string {
  return `${plugin.replace(/-/g, '_')}.`;
}

/** The core services as one plugin sees them: it may write only its own audit actions. */
function servicesFor(plugin: Plugin, services: PluginServices): PluginServices {
  const prefix = auditPrefix(plugin.name);
  return Object.freeze({
    accounts: services.accounts,
    usage: services.usage,
    audit: Object.freeze({
      async record(entry: Parameters<PluginServices['audit']['record']>[0]) {
        const action: unknown = entry?.action;
        if (typeof action !== 'string' || !action.startsWith(prefix) || !/^[a-z0-9_][a-z0-9_.:]*$/.test(action.slice(prefix.length))) {
          throw new PluginError(plugin.name, `plugin "${plugin.name}" may write only audit actions "${prefix}<event>" (event: a-z 0-9 _ . :), not ${JSON.stringify(action)}`);
        }
        await services.audit.record(entry);
      },
    }),
  });
}

/** An init that timed out may still finish; whatever it acquired is released then. */
function closeWhenSettled(pending: Promise<PluginHandle | void>, logger: Logger): void {
  pending
    .then((handle) => (typeof handle?.close === 'function' ? handle.close() : undefined))
    .catch((err: unknown) => logger.warn({ err }, 'plugin init failed after its timeout'));
}

/** Closes in reverse order; a close that throws or times out is logged and the rest still close. */
export async function closePlugins(started: readonly Started[], deps: Pick<LifecycleDeps, 'closeTimeoutMs'>): Promise<void> {
  for (const { handle, logger } of [...started].reverse()) {
    if (!handle) continue;
    try {
      await withTimeout(deps.closeTimeoutMs, () => handle.close());
      logger.debug('plugin closed');
    } catch (err) {
      logger.error({ err }, 'plugin close failed');
    }
  }
}
