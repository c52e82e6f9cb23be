import pg from 'pg';
import { DataSource, type DataSourceOptions, type LogLevel } from 'typeorm';
import { redactUrl, type Logger } from '../../lib/log.js';
import { startEmbedded, type EmbeddedServer } from './embedded.js';
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
  /** Postgres only: pool size (default 10). The embedded store always uses one connection. */
  poolSize?: number;
}

/**
 * The open database: TypeORM's DataSource over real Postgres or the embedded store.
 *
 * Inside `dataSource.transaction(async (m) => …)` use only `m` (its repositories and
 * queries). The embedded store has ONE connection, held by the transaction: a call on
 * `dataSource` from inside the callback waits for that connection and fails after 10 s
 * ("timeout exceeded when trying to connect"). On Postgres it would silently run outside
 * the transaction, which is a bug there too.
 */
export interface Database {
  readonly dataSource: DataSource;
  readonly kind: 'postgres' | 'embedded';
  /** One round trip; throws when the database cannot answer (for /ready). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

// Postgres: fail a connect within 5 s and a query the server stopped answering (SIGSTOP,
// network loss) within 20 s, rather than piling requests up behind it (reliability D8).
const PG_CONNECT_TIMEOUT_MS = 5_000;
const PG_STATEMENT_TIMEOUT_MS = 15_000;
const PG_QUERY_TIMEOUT_MS = 20_000;
const PG_IDLE_IN_TRANSACTION_MS = 60_000;
// Embedded: one connection, so a caller waits for every transaction queued before it.
const EMBEDDED_CONNECT_TIMEOUT_MS = 10_000;
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
  let embedded: EmbeddedServer | undefined;
  let options: DataSourceOptions;
  if (opts.databaseUrl) {
    if (opts.schema) await createSchema(opts.databaseUrl, opts.schema);
    options = postgresOptions(opts.databaseUrl, opts, logger);
  } else {
    embedded = await startEmbedded(opts.dataDir, logger);
    options = embeddedOptions(embedded, logger);
  }
  const kind = embedded ? 'embedded' : 'postgres';
  const dataSource = new DataSource(options);
  try {
    await dataSource.initialize();
    const applied = await migrate(dataSource, kind);
    logger.info({ kind, applied, ...(embedded ? { created: embedded.created } : { url: redactUrl(opts.databaseUrl ?? '') }) }, 'database ready');
  } catch (err) {
    if (dataSource.isInitialized) await dataSource.destroy().catch(() => undefined);
    await embedded?.close().catch(() => undefined);
    const where = embedded ? 'the embedded database' : redactUrl(opts.databaseUrl ?? '');
    throw new Error(`database: cannot open ${where}: ${(err as Error).message}`, { cause: err });
  }
  let closing: Promise<void> | undefined;
  return {
    dataSource,
    kind,
    async ping() {
      await dataSource.query('SELECT 1');
    },
    close() {
      closing ??= (async () => {
        try {
          if (dataSource.isInitialized) await dataSource.destroy();
        } finally {
          await embedded?.close();
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
    applicationName: 'hackstream',
    poolSize: Math.max(2, opts.poolSize ?? 10),
    connectTimeoutMS: PG_CONNECT_TIMEOUT_MS,
    extra: {
      statement_timeout: PG_STATEMENT_TIMEOUT_MS,
      query_timeout: PG_QUERY_TIMEOUT_MS,
      idle_in_transaction_session_timeout: PG_IDLE_IN_TRANSACTION_MS,
      keepAlive: true,
      // Timestamps are instants either way; UTC keeps any text rendering in UTC too.
      options: `-c TimeZone=UTC${opts.schema ? ` -c search_path=${opts.schema}` : ''}`,
    },
  };
}

function embeddedOptions(server: EmbeddedServer, logger: Logger): DataSourceOptions {
  return {
    ...common(logger),
    host: server.socketDir,
    port: server.port,
    username: 'postgres',
    database: 'postgres',
    poolSize: 1,
    connectTimeoutMS: EMBEDDED_CONNECT_TIMEOUT_MS,
    // Keep the one connection open: reconnecting gains nothing in-process.
    extra: { idleTimeoutMillis: 0 },
  };
}

async function migrate(dataSource: DataSource, kind: 'postgres' | 'embedded'): Promise<string[]> {
  if (kind === 'embedded') {
    // One process owns the embedded store (a lock file says so) and it has one connection.
    return (await dataSource.runMigrations({ transaction: 'all' })).map((m) => m.name);
  }
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
