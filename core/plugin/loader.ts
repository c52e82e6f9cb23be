import type { z } from 'zod';
import { ConfigError } from '../config/load.js';
import { PLUGIN_CONTRACT_VERSION, type Plugin } from './contract.js';
import { describe, PluginError } from './errors.js';
import { DependencyCycleError, initOrder } from './order.js';
import { KNOWN_PLUGINS, type PluginCatalogue } from './registry.js';
import { resolvePluginKey, type Resolved } from './resolve.js';

/** An enabled plugin with its validated, frozen options. */
export interface LoadedPlugin {
  readonly plugin: Plugin;
  readonly options: unknown;
  /** Where it came from: `built-in`, the path as written, or `<package> from <folder>`. */
  readonly source?: string;
}

export interface LoadOptions {
  /** The built-ins (default: KNOWN_PLUGINS). */
  readonly catalogue?: PluginCatalogue;
  /** Path keys are relative to it: the config file's folder (default: the working directory). */
  readonly baseDir?: string;
  /** The plugins folder searched for package keys (default: `./plugins` under baseDir). */
  readonly pluginsDir?: string;
  /** Where the server's node_modules lives (tests). */
  readonly serverRoot?: string;
}

/** A plugin's name: lowercase letters, digits and hyphens (routes, logs, its SQL schema). */
export const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,63}$/;

/**
 * Resolves the `plugins` config section (built-in names, package names, paths), imports each
 * module, checks its contract version and shape, validates every plugin's options and
 * dependencies (nothing is initialised), and returns the plugins in init order. Operator
 * mistakes (a key that resolves nowhere, another contract version, a bad option, a missing
 * dependency, two plugins with one name) throw ConfigError listing every problem; plugin
 * faults (import fails, wrong shape, cycle) throw PluginError.
 */
export async function loadPlugins(enabled: Readonly<Record<string, unknown>>, opts: LoadOptions = {}): Promise<LoadedPlugin[]> {
  const catalogue = opts.catalogue ?? KNOWN_PLUGINS;
  const baseDir = opts.baseDir ?? process.cwd();
  const resolveOpts = { catalogue, baseDir, pluginsDir: opts.pluginsDir ?? `${baseDir}/plugins`, ...(opts.serverRoot ? { serverRoot: opts.serverRoot } : {}) };
  const problems: string[] = [];
  const resolved: Resolved[] = [];
  for (const key of Object.keys(enabled)) {
    const r = resolvePluginKey(key, resolveOpts);
    if (r.ok) resolved.push(r.value);
    else problems.push(r.problem);
  }
  const byName = new Map<string, LoadedPlugin & { key: string }>();
  for (const entry of resolved) {
    const plugin = await importPlugin(entry);
    if (typeof plugin === 'string') {
      problems.push(plugin);
      continue;
    }
    const clash = byName.get(plugin.name);
    if (clash) {
      problems.push(`plugins.${entry.key}: its plugin is named "${plugin.name}", like the one from ${clash.source}; plugin names must be unique`);
      continue;
    }
    const parsed = validateOptions(plugin, entry.key, enabled[entry.key]);
    problems.push(...parsed.problems);
    byName.set(plugin.name, { plugin, options: parsed.options, source: entry.source, key: entry.key });
  }
  for (const loaded of byName.values()) problems.push(...dependencyProblems(loaded.plugin, loaded.key, byName, catalogue));
  if (problems.length > 0) throw new ConfigError(problems);
  return orderPlugins(byName);
}

/** The module's plugin, or a problem string when it was written for another contract version. */
async function importPlugin(entry: Resolved): Promise<Plugin | string> {
  let value: unknown;
  const label = entry.builtin ? entry.key : `${entry.key} (${entry.source})`;
  try {
    value = await entry.load();
  } catch (err) {
    throw new PluginError(entry.key, `plugin "${label}" could not be loaded: ${describe(err)}`, { cause: err });
  }
  if (typeof value === 'object' && value !== null) {
    const { name, contract } = value as Record<string, unknown>;
    if (contract !== PLUGIN_CONTRACT_VERSION && (contract === undefined || typeof contract === 'number')) {
      const who = typeof name === 'string' ? name : entry.key;
      return (
        `plugin ${who} (${entry.builtin ? 'built-in' : entry.key}) was written for plugin contract ${String(contract ?? 1)}; ` +
        `this HackStream implements contract ${PLUGIN_CONTRACT_VERSION}`
      );
    }
  }
  const problems = shapeProblems(entry, value);
  if (problems.length > 0) {
    throw new PluginError(entry.key, `plugin "${label}" does not follow the plugin contract: ${problems.join('; ')}`);
  }
  return value as Plugin;
}

function shapeProblems(entry: Resolved, value: unknown): string[] {
  if (typeof value !== 'object' || value === null) return ['its module must export a plugin object as default'];
  const p = value as Record<string, unknown>;
  const problems: string[] = [];
  if (entry.builtin && p.name !== entry.key) problems.push(`name must be "${entry.key}" (its config key), got ${JSON.stringify(p.name)}`);
  else if (typeof p.name !== 'string' || !PLUGIN_NAME.test(p.name)) {
    problems.push(`name must be 1–64 lowercase letters, digits and hyphens starting with a letter, got ${JSON.stringify(p.name)}`);
  }
  if (typeof p.version !== 'string' || p.version === '') problems.push('version must be a non-empty string');
  if (p.contract !== PLUGIN_CONTRACT_VERSION) problems.push(`contract must be ${PLUGIN_CONTRACT_VERSION}`);
  const deps = p.dependsOn;
  if (deps !== undefined && !(Array.isArray(deps) && deps.every((d) => typeof d === 'string'))) {
    problems.push('dependsOn must be an array of plugin names');
  }
  problems.push(...migrationProblems(p.migrations));
  const schema = p.configSchema as { safeParse?: unknown } | null | undefined;
  if (typeof schema?.safeParse !== 'function') problems.push('configSchema must be a zod schema');
  if (!('exampleConfig' in p)) problems.push('exampleConfig is missing');
  if (typeof p.init !== 'function') problems.push('init must be a function');
  return problems;
}

const MIGRATION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function migrationProblems(migrations: unknown): string[] {
  if (migrations === undefined) return [];
  if (!Array.isArray(migrations)) return ['migrations must be an array of { id, up }'];
  const seen = new Set<string>();
  const problems: string[] = [];
  migrations.forEach((m: unknown, i) => {
    const { id, up } = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
    if (typeof id !== 'string' || !MIGRATION_ID.test(id)) problems.push(`migrations[${i}].id must be 1–128 of letters, digits, . _ -`);
    else if (seen.has(id)) problems.push(`migrations[${i}].id "${id}" is used twice`);
    else seen.add(id);
    if (typeof up !== 'string' || up.trim() === '') problems.push(`migrations[${i}].up must be SQL text`);
  });
  return problems;
}

function validateOptions(plugin: Plugin, key: string, raw: unknown): { options: unknown; problems: string[] } {
  let result: z.ZodSafeParseResult<unknown>;
  try {
    result = plugin.configSchema.safeParse(raw);
  } catch (err) {
    return { options: undefined, problems: [`plugins.${key}: options could not be validated (${describe(err)})`] };
  }
  if (result.success) return { options: deepFreeze(result.data), problems: [] };
  const problems = result.error.issues.map((issue) => {
    const path = ['plugins', key, ...issue.path.map(String)].join('.');
    const fix = issue.code === 'unrecognized_keys' ? '; remove it or check its spelling' : '';
    return `${path}: ${issue.message}${fix}`;
  });
  return { options: undefined, problems };
}

/** `dependsOn` names plugins (not config keys); a built-in that is merely not enabled gets a hint. */
function dependencyProblems(plugin: Plugin, key: string, byName: ReadonlyMap<string, unknown>, catalogue: PluginCatalogue): string[] {
  return (plugin.dependsOn ?? [])
    .filter((dep) => !byName.has(dep))
    .map((dep) =>
      Object.hasOwn(catalogue, dep)
        ? `plugins.${key}: needs plugin "${dep}", which is not enabled; add "${dep}" to plugins`
        : `plugins.${key}: needs plugin "${dep}", which is not a known plugin`,
    );
}

function orderPlugins(byName: Map<string, LoadedPlugin>): LoadedPlugin[] {
  try {
    const order = initOrder([...byName.keys()], (n) => byName.get(n)?.plugin.dependsOn ?? []);
    return order.map((n) => {
      const { plugin, options, source } = byName.get(n) as LoadedPlugin;
      return { plugin, options, ...(source ? { source } : {}) };
    });
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
