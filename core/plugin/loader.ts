import type { z } from 'zod';
import { ConfigError } from '../config/load.js';
import type { Plugin } from './contract.js';
import { describe, PluginError } from './errors.js';
import { DependencyCycleError, initOrder } from './order.js';
import { KNOWN_PLUGINS, type PluginCatalogue } from './registry.js';

/** An enabled plugin with its validated, frozen options. */
export interface LoadedPlugin {
  readonly plugin: Plugin;
  readonly options: unknown;
}

/**
 * Resolves the `plugins` config section against the catalogue, checks each module's shape,
 * validates every plugin's options and dependencies (nothing is initialised), and returns
 * the plugins in init order. Operator mistakes (unknown name, bad option, missing
 * dependency) throw ConfigError listing every problem; plugin faults throw PluginError.
 */
export async function loadPlugins(
  enabled: Readonly<Record<string, unknown>>,
  catalogue: PluginCatalogue = KNOWN_PLUGINS,
): Promise<LoadedPlugin[]> {
  const names = Object.keys(enabled).filter((n) => Object.hasOwn(catalogue, n));
  const known = Object.keys(catalogue).join(', ') || '(none)';
  // Every problem at once: unknown names and the known plugins' bad options together.
  const problems = Object.keys(enabled)
    .filter((n) => !Object.hasOwn(catalogue, n))
    .map((n) => `plugins.${n}: unknown plugin; known plugins: ${known}`);
  const byName = new Map<string, LoadedPlugin>();
  for (const name of names) {
    const plugin = await importPlugin(name, catalogue);
    const parsed = validateOptions(plugin, enabled[name]);
    problems.push(...parsed.problems, ...dependencyProblems(plugin, enabled, catalogue));
    byName.set(name, { plugin, options: parsed.options });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return orderPlugins(byName);
}

async function importPlugin(name: string, catalogue: PluginCatalogue): Promise<Plugin> {
  let value: unknown;
  try {
    value = await catalogue[name]?.();
  } catch (err) {
    throw new PluginError(name, `plugin "${name}" could not be loaded: ${describe(err)}`, { cause: err });
  }
  const problems = shapeProblems(name, value);
  if (problems.length > 0) {
    throw new PluginError(name, `plugin "${name}" does not follow the plugin contract: ${problems.join('; ')}`);
  }
  return value as Plugin;
}

function shapeProblems(name: string, value: unknown): string[] {
  if (typeof value !== 'object' || value === null) return ['its module must export a plugin object as default'];
  const p = value as Record<string, unknown>;
  const problems: string[] = [];
  if (p.name !== name) problems.push(`name must be "${name}" (its config key), got ${JSON.stringify(p.name)}`);
  if (typeof p.version !== 'string' || p.version === '') problems.push('version must be a non-empty string');
  const deps = p.dependsOn;
  if (deps !== undefined && !(Array.isArray(deps) && deps.every((d) => typeof d === 'string'))) {
    problems.push('dependsOn must be an array of plugin names');
  }
  const schema = p.configSchema as { safeParse?: unknown } | null | undefined;
  if (typeof schema?.safeParse !== 'function') problems.push('configSchema must be a zod schema');
  if (!('exampleConfig' in p)) problems.push('exampleConfig is missing');
  if (typeof p.init !== 'function') problems.push('init must be a function');
  return problems;
}

function validateOptions(plugin: Plugin, raw: unknown): { options: unknown; problems: string[] } {
  let result: z.ZodSafeParseResult<unknown>;
  try {
    result = plugin.configSchema.safeParse(raw);
  } catch (err) {
    return { options: undefined, problems: [`plugins.${plugin.name}: options could not be validated (${describe(err)})`] };
  }
  if (result.success) return { options: deepFreeze(result.data), problems: [] };
  const problems = result.error.issues.map((issue) => {
    const path = ['plugins', plugin.name, ...issue.path.map(String)].join('.');
    const fix = issue.code === 'unrecognized_keys' ? '; remove it or check its spelling' : '';
    return `${path}: ${issue.message}${fix}`;
  });
  return { options: undefined, problems };
}

function dependencyProblems(plugin: Plugin, enabled: Readonly<Record<string, unknown>>, catalogue: PluginCatalogue): string[] {
  return (plugin.dependsOn ?? [])
    .filter((dep) => !Object.hasOwn(enabled, dep))
    .map((dep) =>
      Object.hasOwn(catalogue, dep)
        ? `plugins.${plugin.name}: needs plugin "${dep}", which is not enabled; add "${dep}" to plugins`
        : `plugins.${plugin.name}: needs plugin "${dep}", which is not a known plugin`,
    );
}

function orderPlugins(byName: Map<string, LoadedPlugin>): LoadedPlugin[] {
  try {
    const order = initOrder([...byName.keys()], (n) => byName.get(n)?.plugin.dependsOn ?? []);
    return order.map((n) => byName.get(n) as LoadedPlugin);
  } catch (err) {
    if (!(err instanceof DependencyCycleError)) throw err;
    const first = err.cycle[0] ?? '';
    throw new PluginError(first, `plugins depend on each other in a cycle: ${err.cycle.join(' → ')}`, { cause: err });
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
