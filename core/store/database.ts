import pg from 'pg';
import { listen, type Listener, type NotificationHandlers } from './notifications.js';
import { DataSource, type DataSourceOptions, type LogLevel } from 'typeorm';
import { redactUrl, type Logger } from '../../lib/log.js';
import { startEmbeddedStore, type EmbeddedStore, type RunAs } from './embedded.js';
import { ENTITIES } from './entities.js';
import { MIGRATIONS } from './migrations/index.js';
import { PinoOrmLogger } from './typeorm-logger.js';

export interface DatabaseOptions {
  /** postgres:// URL; without it the embedded store runs under `<dataDir>/state/`. */
  databaseUrl?: string;
  dataDir: string;
  logger: Logger;
  /**
   * Postgres only: keep every table in this schema (created if missing) by setting the
   * connection's search_path. Tests give each run its own schema in a shared database.
   */
  schema?: string;
  /** Pool size (default 10, at least 2). */
  poolSize?: number;
  /**
   * Bring the schema up to date (default true). A process that only appends audit rows (the
   * agent) opens the database without migrating; the control process migrates.
   */
  migrate?: boolean;
  /** Embedded only, when root: who the server runs as (default: the `hackstream` system user). */
  runAs?: RunAs | 'auto';
}

/**
 * The open database: TypeORM's DataSource over real Postgres or the embedded store (a
 * private PostgreSQL server under the data dir, see embedded.ts).
 *
 * Inside `dataSource.transaction(async (m) => …)` use only `m` (its repositories and
 * queries): a call on `dataSource` from inside the callback runs on another connection,
 * outside the transaction.
 */
export interface Database {
  readonly dataSource: DataSource;
  readonly kind: 'postgres' | 'embedded';
  /** One round trip; throws when the database cannot answer (for /ready). */
  ping(): Promise<void>;
  /** LISTEN on `channel` over a connection of its own (core/store/notifications.ts). */
  listen(channel: string, handlers: NotificationHandlers): Listener;
  close(): Promise<void>;
}

// Fail a connect within 5 s and a query the server stopped answering (SIGSTOP,
// network loss) within 20 s, rather than piling requests up behind it (reliability D8).
const PG_CONNECT_TIMEOUT_MS = 5_000;
const PG_STATEMENT_TIMEOUT_MS = 15_000;
const PG_QUERY_TIMEOUT_MS = 20_000;
const PG_IDLE_IN_TRANSACTION_MS = 60_000;
/** Advisory lock key held while migrating, so instances starting together migrate once. */
const MIGRATION_LOCK_KEY = 0x48534d31; // "HSM1"

/**
 * Opens the database and brings its schema up to date (migrations run at every open; those
 * already applied are skipped). Entities and migrations are the same for both kinds.
 */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const logger = opts.logger.child({ component: 'database' });
  if (opts.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(opts.schema)) {
    throw new Error(`database: schema "${opts.schema}" must be lowercase letters, digits and underscores`);
  }
  let embedded: EmbeddedStore | undefined;
  let options: DataSourceOptions;
  if (opts.databaseUrl) {
    if (opts.schema) await createSchema(opts.databaseUrl, opts.schema);
    options = postgresOptions(opts.databaseUrl, opts, logger);
  } else {
    // Starts the data dir's server, or joins the one another process (or opener) runs.
    embedded = await startEmbeddedStore({ dataDir: opts.dataDir, logger, ...(opts.runAs ? { runAs: opts.runAs } : {}) });
    options = embeddedOptions(embedded, opts, logger);
  }
  const kind = embedded ? 'embedded' : 'postgres';
  const dataSource = new DataSource(options);
  try {
    await dataSource.initialize();
    const applied = opts.migrate === false ? [] : await migrate(dataSource);
    const where = embedded ? { created: embedded.created, owned: embedded.owned } : { url: redactUrl(opts.databaseUrl ?? '') };
    logger.info({ kind, applied, ...where }, 'database ready');
  } catch (err) {
    if (dataSource.isInitialized) await dataSource.destroy().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    const where = embedded ? 'the embedded database' : redactUrl(opts.databaseUrl ?? '');
    throw new Error(`database: cannot open ${where}: ${(err as Error).message}`, { cause: err });
  }
  let closing: Promise<void> | undefined;
  const listenConfig: pg.ClientConfig = embedded
    ? { host: embedded.socketDir, port: embedded.port, user: embedded.user, database: embedded.database, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }
    : { connectionString: opts.databaseUrl, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, keepAlive: true };
  const listeners = new Set<Listener>();
  return {
    dataSource,
    kind,
    async ping() {
      await dataSource.query('SELECT 1');
    },
    listen(channel, handlers) {
      const l = listen(listenConfig, channel, handlers, logger);
      listeners.add(l);
      return l;
    },
    close() {
      closing ??= (async () => {
        await Promise.all([...listeners].map((l) => l.close()));
        try {
          if (dataSource.isInitialized) await dataSource.destroy();
        } finally {
          // Stops the server only when this process started it and no other opener here uses it.
          await embedded?.stop();
        }
      })();
      return closing;
    },
  };
}

function common(logger: Logger) {
  const logging: LogLevel[] = ['error', 'warn', 'migration'];
  return {
    type: 'postgres',
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'typeorm_migrations',
    synchronize: false,
    migrationsRun: false,
    // Ids come from gen_random_uuid() (core since PostgreSQL 13): no extension to install.
    installExtensions: false,
    uuidExtension: 'pgcrypto',
    logging,
    logger: new PinoOrmLogger(logger),
    maxQueryExecutionTime: 1_000,
    poolErrorHandler: (err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'database connection lost'),
  } as const;
}

function postgresOptions(url: string, opts: DatabaseOptions, logger: Logger): DataSourceOptions {
  return {
    ...common(logger),
    url,
    ...pool(opts),
    extra: { ...timeouts(), keepAlive: true, options: sessionOptions(opts.schema) },
  };
}

function embeddedOptions(server: EmbeddedStore, opts: DatabaseOptions, logger: Logger): DataSourceOptions {
  return {
    ...common(logger),
    host: server.socketDir,
    port: server.port,
    username: server.user,
    database: server.database,
    ...pool(opts),
    extra: { ...timeouts(), options: sessionOptions(undefined) },
  };
}

function pool(opts: DatabaseOptions) {
  return { applicationName: 'hackstream', poolSize: Math.max(2, opts.poolSize ?? 10), connectTimeoutMS: PG_CONNECT_TIMEOUT_MS };
}

function timeouts() {
  return {
    statement_timeout: PG_STATEMENT_TIMEOUT_MS,
    query_timeout: PG_QUERY_TIMEOUT_MS,
    idle_in_transaction_session_timeout: PG_IDLE_IN_TRANSACTION_MS,
  };
}

// Timestamps are instants either way; UTC keeps any text rendering in UTC too.
function sessionOptions(schema: string | undefined): string {
  return `-c TimeZone=UTC${schema ? ` -c search_path=${schema}` : ''}`;
}

// Several processes (and instances) may open one database at once: one migrates, under an
// advisory lock, the others then find nothing left to apply.
async function migrate(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      return (await dataSource.runMigrations({ transaction: 'all' })).map((m) => m.name);
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await runner.release();
  }
}

// Before the pool connects: TypeORM reads current_schema() once, which is null while the
// search_path names a schema that does not exist yet.
async function createSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  } finally {
    await client.end();
  }
}

export { redactUrl };
