import type { Logger } from '../../lib/log.js';
import type { PluginContext, PluginHandle, PluginServices } from './contract.js';
import { describe, PluginError } from './errors.js';
import type { LoadedPlugin } from './loader.js';
import { openRegistrar, type Registrations } from './registrations.js';
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
  readonly registrations: Registrations;
  readonly initTimeoutMs: number;
  readonly closeTimeoutMs: number;
}

/**
 * Calls every init in the given (dependency) order. When one fails or times out, the
 * plugins already initialised are closed in reverse and a PluginError naming it is thrown.
 */
export async function initPlugins(loaded: readonly LoadedPlugin[], deps: LifecycleDeps): Promise<Started[]> {
  const started: Started[] = [];
  for (const entry of loaded) {
    try {
      started.push(await initOne(entry, deps));
    } catch (err) {
      await closePlugins(started, deps);
      throw err;
    }
  }
  return started;
}

async function initOne({ plugin, options }: LoadedPlugin, deps: LifecycleDeps): Promise<Started> {
  const { name, version } = plugin;
  const logger = deps.logger.child({ plugin: name });
  const { registrar, seal } = openRegistrar(name, deps.registrations);
  const ctx: PluginContext<unknown> = Object.freeze({ logger, config: options, register: registrar, services: deps.services });
  const pending = Promise.resolve().then(() => plugin.init(ctx));
  try {
    const handle = await withTimeout(deps.initTimeoutMs, () => pending);
    if (handle !== undefined && typeof (handle as Partial<PluginHandle> | null)?.close !== 'function') {
      throw new Error('init must resolve to nothing or to an object with a close() method');
    }
    logger.info({ version }, 'plugin initialised');
    return { name, version, logger, handle: handle ?? undefined };
  } catch (err) {
    if (err instanceof TimeoutError) closeWhenSettled(pending, logger);
    throw new PluginError(name, `plugin "${name}" failed to initialise: ${describe(err)}`, { cause: err });
  } finally {
    seal();
  }
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
