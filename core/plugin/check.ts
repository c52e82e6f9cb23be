/*
 * The plugin contract suite as a library: every check a plugin must pass, run on one config
 * key (a built-in, a package, a path) through the real loader and host, on a real store.
 * Used by test/contract/plugins.test.ts and by `npm run plugin:check`.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger, type Logger } from '../../lib/log.js';
import { ConfigError } from '../config/load.js';
import { openDatabase, type Database } from '../store/database.js';
import { openKv, type KeyValueStore } from '../store/kv.js';
import type { Plugin } from './contract.js';
import { describe } from './errors.js';
import { startPluginHost } from './host.js';
import { loadPlugins, type LoadedPlugin, type LoadOptions } from './loader.js';
import { KNOWN_PLUGINS } from './registry.js';
import { resolvePluginKey } from './resolve.js';
import { unavailableServices } from './services.js';
import { pluginStorageProvider } from './storage.js';

/** One check's outcome: one line of the report. */
export interface CheckLine {
  readonly check: string;
  readonly ok: boolean;
  /** Why it failed, or what it found. */
  readonly detail?: string;
}

export interface CheckOptions {
  /** How keys resolve (baseDir, pluginsDir, the built-ins). */
  readonly load?: LoadOptions;
  /** A PostgreSQL to use (in a throwaway schema, dropped afterwards); without it an embedded store in a temporary folder. */
  readonly databaseUrl?: string;
  readonly logger?: Logger;
}

/** Runs the contract suite on the plugin behind `key`. Never throws: a failure is a line. */
export async function checkPlugin(key: string, opts: CheckOptions = {}): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  const pass = (check: string, detail?: string) => lines.push({ check, ok: true, ...(detail ? { detail } : {}) });
  const fail = (check: string, err: unknown) => lines.push({ check, ok: false, detail: err instanceof ConfigError ? err.problems.join('; ') : describe(err) });
  const loadCheck = 'loads through the real loader with its example config (contract version, shape, options, dependencies)';
  let all: LoadedPlugin[];
  let self: LoadedPlugin;
  try {
    ({ all, self } = await loadWithExample(key, opts.load ?? {}));
    pass(loadCheck, `${self.plugin.name} ${self.plugin.version}, contract ${self.plugin.contract}`);
  } catch (err) {
    fail(loadCheck, err);
    return lines;
  }
  lines.push(...optionChecks(self));
  const before = await openHandles();
  let store: CheckStore | undefined;
  try {
    store = await openCheckStore(opts.databaseUrl, opts.logger ?? silentLogger());
    pass('a store to run on', store.kind);
  } catch (err) {
    fail('a store to run on', err);
    return lines;
  }
  try {
    lines.push(...(await lifecycleChecks(all, self.plugin, store, opts.logger ?? silentLogger())));
  } finally {
    await store.close().catch(() => undefined);
  }
  const leaked = await settledDiff(before);
  if (leaked.length === 0) pass('init then close leaves no open handles');
  else fail('init then close leaves no open handles', `still open: ${leaked.join(', ')}`);
  return lines;
}

/** The plugin with its example config, and its dependencies (built-ins) with theirs. */
async function loadWithExample(key: string, load: LoadOptions): Promise<{ all: LoadedPlugin[]; self: LoadedPlugin }> {
  const catalogue = load.catalogue ?? KNOWN_PLUGINS;
  const baseDir = load.baseDir ?? process.cwd();
  const r = resolvePluginKey(key, { catalogue, baseDir, pluginsDir: load.pluginsDir ?? join(baseDir, 'plugins'), ...(load.serverRoot ? { serverRoot: load.serverRoot } : {}) });
  if (!r.ok) throw new Error(r.problem);
  const declared = (await r.value.load()) as Partial<Plugin> | undefined;
  const enabled: Record<string, unknown> = {};
  for (const dep of Array.isArray(declared?.dependsOn) ? declared.dependsOn : []) {
    const plugin = (await catalogue[dep]?.()) as Partial<Plugin> | undefined;
    enabled[dep] = plugin?.exampleConfig ?? {};
  }
  enabled[key] = declared?.exampleConfig;
  const all = await loadPlugins(enabled, load);
  const self = all.find((p) => p.plugin.name === declared?.name);
  if (!self) throw new Error(`${key} did not load`);
  return { all, self };
}

function optionChecks({ plugin, options }: LoadedPlugin): CheckLine[] {
  const example = plugin.exampleConfig;
  const withUnknown = typeof example === 'object' && example !== null && !Array.isArray(example) ? { ...example, noSuchOption: 1 } : { noSuchOption: 1 };
  const refused = !plugin.configSchema.safeParse(withUnknown).success;
  return [
    { check: 'its options reach it deep-frozen', ok: isDeepFrozen(options) },
    { check: 'an unknown option is refused (strict schema)', ok: refused, ...(refused ? {} : { detail: 'an option "noSuchOption" was accepted; use .strict()' }) },
  ];
}

async function lifecycleChecks(all: LoadedPlugin[], plugin: Plugin, store: CheckStore, logger: Logger): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  const storage = pluginStorageProvider({ dataSource: store.db.dataSource, kv: store.kv, logger, dataDir: store.dataDir, ...(store.schema ? { databaseSchema: store.schema } : {}) });
  const migrations = plugin.migrations ?? [];
  for (const round of ['first', 'second'] as const) {
    const check = round === 'first' ? 'its migrations apply, then init and close succeed' : 'a restart applies no migration again, then init and close succeed';
    try {
      const host = await startPluginHost(all, { logger, services: unavailableServices(), storage });
      await host.close();
      const rows = (await store.db.dataSource.query('SELECT id FROM plugin_migrations WHERE plugin = $1', [plugin.name])) as { id: string }[];
      const ids = rows.map((r) => r.id).sort();
      const expected = migrations.map((m) => m.id).sort();
      if (JSON.stringify(ids) !== JSON.stringify(expected)) throw new Error(`plugin_migrations holds [${ids.join(', ')}], expected [${expected.join(', ')}]`);
      lines.push({ check, ok: true, detail: `${migrations.length} migration(s)` });
    } catch (err) {
      lines.push({ check, ok: false, detail: describe(err) });
      break;
    }
  }
  return lines;
}

interface CheckStore {
  readonly kind: string;
  readonly db: Database;
  readonly kv: KeyValueStore;
  /** Postgres: the throwaway schema the app's tables live in. */
  readonly schema?: string;
  /** A throwaway data dir: the plugins' private folders go there. */
  readonly dataDir: string;
  close(): Promise<void>;
}

async function openCheckStore(databaseUrl: string | undefined, logger: Logger): Promise<CheckStore> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hs-plugin-check-'));
  // The embedded store runs as the hackstream system user when root: it must get through.
  chmodSync(dataDir, 0o755);
  const schema = databaseUrl ? `t_check_${randomBytes(5).toString('hex')}` : undefined;
  let db: Database | undefined;
  try {
    db = await openDatabase({ dataDir, logger, ...(databaseUrl ? { databaseUrl, schema } : {}) });
    const kv = await openKv({ redisPrefix: `hs-check:${randomBytes(5).toString('hex')}:`, logger });
    const opened = db;
    return {
      kind: databaseUrl ? `PostgreSQL, schema ${schema}` : 'the embedded PostgreSQL',
      db: opened,
      kv,
      ...(schema ? { schema } : {}),
      dataDir,
      async close() {
        await kv.close();
        if (schema) await opened.dataSource.query(dropSchemasSql(schema)).catch(() => undefined);
        await opened.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await db?.close().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** Drops the app schema and every plugin schema derived from it, in one statement. */
function dropSchemasSql(schema: string): string {
  return `DO $$ DECLARE s text; BEGIN
    FOR s IN SELECT nspname FROM pg_namespace WHERE nspname = '${schema}' OR nspname LIKE '${schema}\\_p\\_%' LOOP
      EXECUTE format('DROP SCHEMA %I CASCADE', s);
    END LOOP; END $$`;
}

function isDeepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  return Object.isFrozen(value) && Object.values(value).every(isDeepFrozen);
}

async function openHandles(): Promise<Map<string, number>> {
  await sleep(0);
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/** Handles open now but not before; closing sockets and processes settle over a few ticks, so it asks for up to 2 s. */
async function settledDiff(before: Map<string, number>): Promise<string[]> {
  let extra: string[] = [];
  for (let i = 0; i < 40; i++) {
    const now = await openHandles();
    extra = [...now].filter(([type, n]) => n > (before.get(type) ?? 0)).map(([type, n]) => `${type} ×${n - (before.get(type) ?? 0)}`);
    if (extra.length === 0) return [];
    await sleep(50);
  }
  return extra;
}
