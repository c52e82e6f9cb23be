/*
 * Where a `plugins` config key points: a built-in (the static registry), a path (`./…`,
 * `../…`, `/…`) or an npm package found in the server's node_modules or the plugins folder.
 * Nothing here imports a plugin; it only finds the file to import.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import type { PluginCatalogue, PluginModuleLoader } from './registry.js';

/** The server's own folder (holds its node_modules). */
export const SERVER_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `@scope/name` or `name`, as npm allows them (lowercase). */
export const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

export type KeyKind = 'path' | 'package';

/** A path key starts with ./, ../ or /; anything else is a built-in or package name. */
export function keyKind(key: string): KeyKind {
  return key.startsWith('./') || key.startsWith('../') || key.startsWith('/') ? 'path' : 'package';
}

export interface ResolveOptions {
  readonly catalogue: PluginCatalogue;
  /** Relative path keys are resolved against it: the config file's folder, or the working directory. */
  readonly baseDir: string;
  /** The plugins folder (`pluginsDir`). */
  readonly pluginsDir: string;
  /** Where the server's node_modules is; defaults to the server's own folder. */
  readonly serverRoot?: string;
}

/** A key that resolved: how to load its module, and where it came from (for messages). */
export interface Resolved {
  readonly key: string;
  readonly builtin: boolean;
  /** `built-in`, the key as written for a path, or `<package> from <folder>`. */
  readonly source: string;
  readonly load: PluginModuleLoader;
}

export type Resolution = { readonly ok: true; readonly value: Resolved } | { readonly ok: false; readonly problem: string };

/** Resolves one config key; never throws (a key that resolves nowhere is a problem to report). */
export function resolvePluginKey(key: string, opts: ResolveOptions): Resolution {
  const builtin = Object.hasOwn(opts.catalogue, key) ? opts.catalogue[key] : undefined;
  if (builtin) return { ok: true, value: { key, builtin: true, source: 'built-in', load: builtin } };
  if (keyKind(key) === 'path') return resolvePath(key, opts);
  if (!PACKAGE_NAME.test(key) || key.length > 214) return { ok: false, problem: `plugins.${key}: ${unknownHelp(opts)}` };
  return resolvePackage(key, opts);
}

function resolvePath(key: string, opts: ResolveOptions): Resolution {
  const target = isAbsolute(key) ? key : resolve(opts.baseDir, key);
  const where = `${key} (resolved to ${target})`;
  if (!existsSync(target)) return { ok: false, problem: `plugins.${key}: no file or folder at ${where}` };
  const entry = statSync(target).isDirectory() ? folderEntry(target) : { ok: true as const, file: target };
  if (!entry.ok) return { ok: false, problem: `plugins.${key}: ${entry.problem} in ${where}` };
  return { ok: true, value: { key, builtin: false, source: key, load: importDefault(entry.file) } };
}

function resolvePackage(key: string, opts: ResolveOptions): Resolution {
  const root = opts.serverRoot ?? SERVER_ROOT;
  const folders = [join(root, 'node_modules', key), join(opts.pluginsDir, 'node_modules', key), join(opts.pluginsDir, key)];
  const found = folders.find((f) => existsSync(f) && statSync(f).isDirectory());
  if (!found) {
    return { ok: false, problem: `plugins.${key}: ${unknownHelp(opts)}; looked for the package in ${folders.join(', ')}` };
  }
  const entry = folderEntry(found);
  if (!entry.ok) return { ok: false, problem: `plugins.${key}: ${entry.problem} in the package at ${found}` };
  return { ok: true, value: { key, builtin: false, source: `${key} from ${found}`, load: importDefault(entry.file) } };
}

/** The start of every "cannot resolve" message: what a key may be. */
function unknownHelp(opts: ResolveOptions): string {
  const known = Object.keys(opts.catalogue).join(', ') || '(none)';
  return (
    `unknown plugin; known plugins: ${known} (built-in). A key is a built-in name, an npm package name ` +
    `(installed in the server's node_modules or in pluginsDir ${opts.pluginsDir}) or a path starting with ./, ../ or / ` +
    `(relative to ${opts.baseDir})`
  );
}

const packageJson = z.looseObject({ main: z.string().min(1).optional(), exports: z.unknown().optional() });

/** A folder's module: package.json `exports` (the "." entry) or `main`, else index.ts / index.js. */
function folderEntry(dir: string): { ok: true; file: string } | { ok: false; problem: string } {
  const pkgFile = join(dir, 'package.json');
  if (existsSync(pkgFile)) {
    let parsed: z.infer<typeof packageJson>;
    try {
      parsed = packageJson.parse(JSON.parse(readFileSync(pkgFile, 'utf8')));
    } catch (err) {
      return { ok: false, problem: `package.json is not valid (${err instanceof Error ? err.message.split('\n')[0] : String(err)})` };
    }
    const declared = parsed.exports !== undefined ? exportsTarget(parsed.exports) : parsed.main;
    if (parsed.exports !== undefined && declared === undefined) return { ok: false, problem: 'package.json "exports" has no "." entry for import' };
    if (declared !== undefined) {
      const file = resolve(dir, declared);
      return existsSync(file) ? { ok: true, file } : { ok: false, problem: `package.json points at ${declared}, which does not exist` };
    }
  }
  for (const name of ['index.ts', 'index.js']) if (existsSync(join(dir, name))) return { ok: true, file: join(dir, name) };
  return { ok: false, problem: 'no package.json "exports"/"main" and no index.ts or index.js' };
}

/** The file `import '<package>'` would load: exports as a string, its "." entry, or the import/node/default condition. */
function exportsTarget(exports: unknown): string | undefined {
  if (typeof exports === 'string') return exports;
  if (Array.isArray(exports)) return exportsTarget(exports[0]);
  if (typeof exports !== 'object' || exports === null) return undefined;
  const map = exports as Record<string, unknown>;
  if ('.' in map) return exportsTarget(map['.']);
  for (const condition of ['import', 'node', 'default']) if (condition in map) return exportsTarget(map[condition]);
  return undefined;
}

function importDefault(file: string): PluginModuleLoader {
  return async () => ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
}
