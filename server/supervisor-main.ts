import { availableParallelism } from 'node:os';
import { extname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ConfigError, loadConfig } from '../core/config/load.js';
import type { Config } from '../core/config/schema.js';
import { createLogger, type Logger } from '../lib/log.js';
import { runSupervisor, Supervisor, type ChildSpec } from './supervisor.js';
import { writeEdgeConfig } from './edge-config.js';
import type { Ids, ServiceHandle } from './supervisor-instances.js';
import { CONTROL_USER, EDGE_USER, ensureSystemUser, prepareDataDir } from './supervisor-privileges.js';

export const HELP = `Usage: npm start [-- --help]

Runs HackStream: one TLS port for the API and every session.
Configuration: a JSON file named by HACKSTREAM_CONFIG (see docs/configuration.md),
overridden by HACKSTREAM_LISTEN (default 0.0.0.0:443), HACKSTREAM_PUBLIC_HOST (localhost),
HACKSTREAM_SESSION_DOMAIN (sessions.localhost), HACKSTREAM_DATA_DIR (.),
HACKSTREAM_REDIS_URL, HACKSTREAM_LOG_LEVEL, HACKSTREAM_TLS_MODE, HACKSTREAM_TLS_CERT_FILE,
HACKSTREAM_TLS_KEY_FILE, HACKSTREAM_DATABASE_URL.

Processes (docs/processes.md). This supervisor starts, in order, each once the one
before is ready:
  store    the embedded PostgreSQL server, only without HACKSTREAM_DATABASE_URL
           (runs as the system user hackstream)
  agent    Docker engine and firewall, the only privileged process (root)
  control  the API, accounts, plugins, the store client (user hackstream)
  edge     the listening port: TLS, SNI routes, tunnels (user hackstream-edge), as
           HACKSTREAM_EDGE_WORKERS cluster workers (default: CPUs, at most 4); the
           supervisor binds the port and hands it over, so the edge needs no privilege
A process that exits is restarted after 0.25 s, doubling up to 30 s. SIGTERM or SIGINT
drains in reverse order: edge (open tunnels get gateway.shutdownDrainMs), control, agent,
store. Run as root, the supervisor creates the two system users when missing; as any other
user every process runs as that user, without separation (development).

On the first start with an empty database an administrator is created from
HACKSTREAM_ADMIN_USER (default "admin") and HACKSTREAM_ADMIN_PASSWORD; without a password
one is generated and printed once to stderr, or, with HACKSTREAM_ADMIN_PASSWORD_FILE (an
absolute path; the systemd unit sets it), written to that file (0600) and not printed.
Manage accounts from the shell with npm run admin -- --help.
`;

const edgeWorkers = z.coerce.number().int('must be a whole number').min(1, 'must be at least 1').max(64, 'must be at most 64');

/** The entry file of a sibling process: `.ts` under tsx (tests), `.js` in dist/. */
function sibling(name: string): string {
  const ext = extname(fileURLToPath(import.meta.url));
  return fileURLToPath(new URL(`./${name}${ext}`, import.meta.url));
}

/** What the children get from the supervisor's environment: config, never anything else. */
function configEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && (k.startsWith('HACKSTREAM_') || k === 'PATH' || k === 'NODE_ENV' || k === 'HOME')) out[k] = v;
  }
  return out;
}

async function startStore(dataDir: string, logger: Logger, runAs: Ids | undefined): Promise<ServiceHandle> {
  // Loaded only without a databaseUrl, so a server on an external Postgres never loads it.
  const { startEmbeddedStore } = await import('../core/store/embedded.js');
  const store = await startEmbeddedStore({ dataDir, logger, ...(runAs ? { runAs } : {}) });
  // A server left by a supervisor that died is joined, not killed: it may be mid-write.
  if (!store.owned) logger.warn({ pid: store.pid }, 'joined an embedded database server this supervisor did not start');
  return { pid: store.pid, owned: store.owned, exited: store.exited, stop: () => store.stop(), env: { HACKSTREAM_EMBEDDED_PG_SOCKET_DIR: store.socketDir } };
}

export interface ChildTableContext {
  config: Readonly<Config>;
  dataDir: string;
  logger: Logger;
  /** HACKSTREAM_EDGE_WORKERS, or its default. */
  workers: number;
  /** Set when running as root: who control and the edge run as. */
  ids?: { control: Ids; edge: Ids };
  /** The edge's own HACKSTREAM_CONFIG (server/edge-config.ts), when there is a config file. */
  edgeEnv?: Record<string, string>;
}

/** The production child table, in start order. */
export function childTable(o: ChildTableContext): ChildSpec[] {
  const store: ChildSpec[] = o.config.databaseUrl
    ? []
    : [{ kind: 'service', name: 'store', readyTimeoutMs: 120_000, stopTimeoutMs: 30_000, start: () => startStore(o.dataDir, o.logger.child({ child: 'store' }), o.ids?.control) }];
  return [
    ...store,
    // Secrets a child has no use for are blanked (an empty override counts as unset).
    { kind: 'fork', name: 'agent', entry: sibling('agent-main'), env: { HACKSTREAM_ADMIN_PASSWORD: '' }, readyTimeoutMs: 60_000, stopTimeoutMs: 15_000 },
    // Control's first start migrates the database and hashes the first admin's password.
    { kind: 'fork', name: 'control', entry: sibling('control-main'), runAs: o.ids?.control, readyTimeoutMs: 120_000, stopTimeoutMs: 15_000 },
    {
      kind: 'cluster',
      name: 'edge',
      entry: sibling('edge-main'),
      workers: o.workers,
      runAs: o.ids?.edge,
      env: { HACKSTREAM_ADMIN_PASSWORD: '', HACKSTREAM_DATABASE_URL: '', ...o.edgeEnv },
      readyTimeoutMs: 30_000,
      // Open tunnels get the configured drain, then a margin for the worker to close.
      stopTimeoutMs: o.config.gateway.shutdownDrainMs + 5_000,
    },
  ];
}

/**
 * `npm start`: returns the exit code (78: configuration error, as sysexits' EX_CONFIG).
 * `children` replaces the child table (tests run fixture children through the real main).
 */
export async function main(argv: string[] = process.argv.slice(2), opts: { children?: (ctx: ChildTableContext) => ChildSpec[] } = {}): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let config: Readonly<Config>;
  let workers: number;
  try {
    config = loadConfig();
    const parsed = edgeWorkers.safeParse(process.env.HACKSTREAM_EDGE_WORKERS || Math.min(availableParallelism(), 4));
    if (!parsed.success) throw new ConfigError([`HACKSTREAM_EDGE_WORKERS: ${parsed.error.issues[0]?.message ?? 'invalid'}`]);
    workers = parsed.data;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 78; // EX_CONFIG
  }
  const logger = createLogger({ level: config.log.level }).child({ process: 'supervisor' });
  const dataDir = resolve(config.dataDir);
  let ids: { control: Ids; edge: Ids } | undefined;
  let runDir: string;
  try {
    if (process.getuid?.() === 0) ids = { control: ensureSystemUser(CONTROL_USER, logger), edge: ensureSystemUser(EDGE_USER, logger) };
    else logger.warn({ uid: process.getuid?.() }, 'not running as root: every process runs as this user, without privilege separation');
    ({ runDir } = prepareDataDir(dataDir, ids, logger));
  } catch (err) {
    logger.fatal({ err }, 'cannot prepare the users and the run directory');
    process.stderr.write(`hackstream: start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const me = process.getuid?.() ?? 0;
  const env = {
    ...configEnv(process.env),
    HACKSTREAM_DATA_DIR: dataDir,
    HACKSTREAM_RUN_DIR: runDir,
    HACKSTREAM_CONTROL_UID: String(ids?.control.uid ?? me),
    HACKSTREAM_EDGE_UID: String(ids?.edge.uid ?? me),
  };
  // cluster.fork() adds to the supervisor's own environment: keep only what children may see.
  for (const key of Object.keys(process.env)) if (!(key in env)) delete process.env[key];
  const edgeEnv = writeEdgeConfig(process.env.HACKSTREAM_CONFIG ? resolve(process.env.HACKSTREAM_CONFIG) : undefined, runDir, ids?.edge);
  const children = (opts.children ?? childTable)({ config, dataDir, logger, workers, edgeEnv, ...(ids ? { ids } : {}) });
  logger.info({ dataDir, runDir, edgeWorkers: workers, children: children.map((c) => c.name), separated: ids !== undefined }, 'starting');
  return runSupervisor(new Supervisor({ children, env, execArgv: process.execArgv, logger }), logger);
}

/** Runs main() as the process's entry: its result becomes the exit code. */
export function runMain(): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`hackstream: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) runMain();
