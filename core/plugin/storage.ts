/*
 * Plugin storage: each plugin's own PostgreSQL schema (its migrations applied at start-up,
 * in order, once each, recorded in the app's plugin_migrations table) and its slice of the
 * shared KV store. This namespaces plugins from each other; it is not a sandbox: plugins
 * are trusted code running in the server.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DataSource, QueryRunner } from 'typeorm';
import type { Logger } from '../../lib/log.js';
import type { KeyValueStore } from '../store/kv.js';
import type { Plugin, PluginStorage } from './contract.js';
import { describe, PluginError } from './errors.js';

/** Gives each plugin its storage, with its migrations applied. */
export type StorageProvider = (plugin: Plugin) => Promise<PluginStorage>;

export interface StorageDeps {
  readonly dataSource: DataSource;
  readonly kv: KeyValueStore;
  readonly logger: Logger;
  /**
   * Set when the app's tables live in a schema of their own (tests: one per run in a shared
   * database): plugin schemas are then `<databaseSchema>_p_<name>`, so runs never share one.
   */
  readonly databaseSchema?: string;
  /** Where plugins' private folders go (`<dataDir>/plugin-data/<name>`); none without it. */
  readonly dataDir?: string;
}

/** `plugin_<name with - as _>`, or `<databaseSchema>_p_<name…>`; at most 63 bytes (a hash keeps long ones apart). */
export function pluginSchemaName(plugin: string, databaseSchema?: string): string {
  const base = `${databaseSchema ? `${databaseSchema}_p_` : 'plugin_'}${plugin.replace(/-/g, '_')}`;
  if (base.length <= 63) return base;
  return `${base.slice(0, 54)}_${createHash('sha256').update(base).digest('hex').slice(0, 8)}`;
}

const quote = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

/** The storage provider for a running control plane. */
export function pluginStorageProvider(deps: StorageDeps): StorageProvider {
  let appSchema: Promise<string> | undefined;
  return async (plugin) => {
    const schema = pluginSchemaName(plugin.name, deps.databaseSchema);
    // A plugin without migrations gets its schema at its first query: no empty schemas.
    let created: Promise<void> | undefined;
    if ((plugin.migrations ?? []).length > 0) {
      // Asked only when needed (an unawaited query would outlive a short-lived host): plugin_migrations lives in the app's schema.
      appSchema ??= deps.dataSource.query('SELECT current_schema() AS s').then((rows: { s: string }[]) => rows[0]?.s ?? 'public');
      created = applyMigrations(deps.dataSource, plugin, schema, await appSchema, deps.logger.child({ plugin: plugin.name }));
      await created;
    }
    const ensure = () => (created ??= createSchema(deps.dataSource, schema).catch((err: unknown) => {
      created = undefined;
      throw err;
    }));
    return Object.freeze({ sql: pluginSql(deps.dataSource, schema, ensure), kv: pluginKv(deps.kv, plugin.name), dir: deps.dataDir ? pluginDir(deps.dataDir, plugin.name) : null });
  };
}

/** `<dataDir>/plugin-data/<name>`, created 0700 (and made 0700 again if it was widened). */
function pluginDir(dataDir: string, name: string): string {
  const dir = join(resolve(dataDir), 'plugin-data', name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}

/** Runs `work` in a transaction with the plugin's schema first on the search path. */
async function inSchema<T>(dataSource: DataSource, schema: string, work: (runner: QueryRunner) => Promise<T>): Promise<T> {
  const runner = dataSource.createQueryRunner();
  try {
    await runner.connect();
    await runner.startTransaction();
    try {
      await runner.query(`SET LOCAL search_path TO ${quote(schema)}`);
      const result = await work(runner);
      await runner.commitTransaction();
      return result;
    } catch (err) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    }
  } finally {
    await runner.release();
  }
}

async function rows<Row>(runner: QueryRunner, text: string, params: readonly unknown[] | undefined): Promise<Row[]> {
  const result = await runner.query(text, params ? [...params] : undefined, true);
  return (result.records ?? []) as Row[];
}

function pluginSql(dataSource: DataSource, schema: string, ensure: () => Promise<void>): PluginStorage['sql'] {
  return Object.freeze({
    query: async <Row>(text: string, params?: readonly unknown[]) => {
      await ensure();
      return inSchema(dataSource, schema, (r) => rows<Row>(r, text, params));
    },
    transaction: async <T>(work: (q: { query: PluginStorage['sql']['query'] }) => Promise<T>) => {
      await ensure();
      return inSchema(dataSource, schema, (r) => work({ query: <Row>(text: string, params?: readonly unknown[]) => rows<Row>(r, text, params) }));
    },
  }) as PluginStorage['sql'];
}

const lock = (r: QueryRunner, schema: string) => r.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`hackstream-plugin:${schema}`]);

async function createSchema(dataSource: DataSource, schema: string): Promise<void> {
  await inSchema(dataSource, schema, async (r) => {
    await lock(r, schema);
    await r.query(`CREATE SCHEMA IF NOT EXISTS ${quote(schema)}`);
  });
}

/**
 * Creates the schema and applies the migrations not yet recorded, each in its own
 * transaction with its record. An advisory lock per schema lets instances start together.
 */
async function applyMigrations(dataSource: DataSource, plugin: Plugin, schema: string, appSchema: string, logger: Logger): Promise<void> {
  const table = `${quote(appSchema)}.plugin_migrations`;
  await createSchema(dataSource, schema);
  const migrations = plugin.migrations ?? [];
  const done = new Set(
    (await dataSource.query(`SELECT id FROM ${table} WHERE plugin = $1`, [plugin.name]) as { id: string }[]).map((row) => row.id),
  );
  const lastDone = migrations.findLastIndex((m) => done.has(m.id));
  const gap = lastDone < 0 ? undefined : migrations.slice(0, lastDone).find((m) => !done.has(m.id));
  if (gap) {
    throw new PluginError(plugin.name, `plugin "${plugin.name}" migration "${gap.id}" comes before "${migrations[lastDone]?.id}", which is already applied; add new migrations at the end`);
  }
  for (const m of migrations.slice(lastDone + 1)) {
    try {
      const applied = await inSchema(dataSource, schema, async (r) => {
        await lock(r, schema);
        // Another instance may have applied it while we waited for the lock.
        if ((await rows(r, `SELECT 1 FROM ${table} WHERE plugin = $1 AND id = $2`, [plugin.name, m.id])).length > 0) return false;
        await r.query(m.up);
        await r.query(`INSERT INTO ${table} (plugin, id) VALUES ($1, $2)`, [plugin.name, m.id]);
        return true;
      });
      if (applied) logger.info({ migration: m.id, schema }, 'plugin migration applied');
    } catch (err) {
      throw new PluginError(plugin.name, `plugin "${plugin.name}" migration "${m.id}" failed: ${describe(err)}`, { cause: err });
    }
  }
}

function pluginKv(kv: KeyValueStore, plugin: string): PluginStorage['kv'] {
  const prefix = `plugin:${plugin}:`;
  const k = (key: string) => {
    if (typeof key !== 'string' || key === '' || key.length > 512) throw new TypeError('a plugin KV key is a string of 1–512 characters');
    return prefix + key;
  };
  const ttl = (opts?: { readonly ttlMs?: number }) => (opts?.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {});
  return Object.freeze({
    get: (key: string) => kv.get(k(key)),
    async set(key: string, value: string, opts?: { readonly ttlMs?: number }) {
      await kv.set(k(key), value, ttl(opts));
    },
    setIfAbsent: (key: string, value: string, opts: { readonly ttlMs: number }) => kv.set(k(key), value, { ttlMs: opts.ttlMs, ifAbsent: true }),
    delete: (key: string) => kv.del(k(key)),
  });
}

/** For a host without a database (unit tests): a plugin with migrations is refused, every call fails. */
export const noStorage: StorageProvider = async (plugin) => {
  if ((plugin.migrations ?? []).length > 0) {
    throw new PluginError(plugin.name, `plugin "${plugin.name}" has SQL migrations, but this host has no database for plugin storage`);
  }
  const fail = () => Promise.reject(new Error('plugin storage is not available in this host'));
  return Object.freeze({
    sql: Object.freeze({ query: fail, transaction: fail }),
    kv: Object.freeze({ get: fail, set: fail, setIfAbsent: fail, delete: fail }),
    dir: null,
  });
};
