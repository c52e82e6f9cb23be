import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from '../../lib/log.js';
import { findBinaries, initCluster, writeConfig } from './embedded-cluster.js';
import { EmbeddedStoreError } from './embedded-errors.js';
import { isAlive, liveServer, SOCKET_PORT, waitReady } from './embedded-live.js';
import { withStartLock } from './embedded-lock.js';
import { checkAncestors, chownTree, ownedDir, resolveRunAs, type RunAs } from './embedded-user.js';

export { EmbeddedStoreError, type EmbeddedStoreCode } from './embedded-errors.js';
export { DEFAULT_SERVICE_USER, ensureServiceUser, type RunAs } from './embedded-user.js';

/*
 * The embedded store: a private PostgreSQL server (Debian's binaries) per data dir, a child
 * of the process that starts it. No TCP; a Unix socket in a 0700 directory. Any process of
 * the same user (or root) may connect, so the admin CLI and the agent use the server the
 * control process started. The server dies with its parent (setpriv's parent-death signal
 * asks it for a fast shutdown), and a SIGKILLed server leaves only state the next start
 * recovers from (WAL replay; a stale postmaster.pid).
 */

// sun_path holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH = 107;
const STOP_TIMEOUT_MS = 30_000;
const LOG_ROTATE_BYTES = 10 * 1024 * 1024;

export interface EmbeddedPaths {
  stateDir: string;
  /** The cluster (PGDATA). Exists once the data dir was initialised or seeded. */
  pgdata: string;
  /** Directory of the socket `.s.PGSQL.5432`: under the data dir, or under /tmp when that path is too long. */
  socketDir: string;
  /** The server's own log (stderr). */
  logFile: string;
}

/** Where the embedded store keeps its files for a data dir. */
export function embeddedPaths(dataDir: string): EmbeddedPaths {
  const root = resolve(dataDir);
  const stateDir = join(root, 'state');
  const pgdata = join(stateDir, 'pg');
  let socketDir = join(root, 'run', 'pg');
  if (join(socketDir, `.s.PGSQL.${SOCKET_PORT}`).length > MAX_SOCKET_PATH) {
    socketDir = join('/tmp', `hackstream-pg-${createHash('sha256').update(root).digest('hex').slice(0, 16)}`);
  }
  return { stateDir, pgdata, socketDir, logFile: join(pgdata, 'log') };
}

function inDataDirSocket(paths: EmbeddedPaths): string {
  return join(dirname(paths.stateDir), 'run', 'pg');
}

export interface EmbeddedStore {
  socketDir: string;
  port: number;
  user: string;
  database: string;
  /** The postmaster's pid. */
  pid: number;
  /** True when this process started the server: then the last stop() in this process stops it. */
  owned: boolean;
  /** True when this start ran initdb. */
  created: boolean;
  /** Settles when the server exits (for a server another process started: noticed within ~1 s). */
  exited: Promise<void>;
  stop(): Promise<void>;
}

export interface EmbeddedConnection {
  host: string;
  port: number;
  user: string;
  database: string;
}

export interface EmbeddedStoreOptions {
  dataDir: string;
  logger: Logger;
  /** Root only: the uid/gid to run the server as; `auto` (the default) is the service user. */
  runAs?: RunAs | 'auto';
  /** The service user `auto` means when root (created if missing). Default `hackstream`. */
  serviceUser?: string;
}

interface Running {
  pid: number;
  owned: boolean;
  created: boolean;
  exited: Promise<void>;
  refs: number;
  stop(): Promise<void>;
}

// Servers this process uses, by cluster: a second opener in the same process shares one.
const inProcess = new Map<string, Promise<Running>>();

/**
 * Starts the data dir's server, or joins the one already running there (started by this
 * process or another). initdb runs on first use.
 */
export async function startEmbeddedStore(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  const paths = embeddedPaths(opts.dataDir);
  let pending = inProcess.get(paths.pgdata);
  if (!pending) {
    pending = startOrJoin(paths, opts);
    inProcess.set(paths.pgdata, pending);
    pending.catch(() => inProcess.delete(paths.pgdata));
  }
  const running = await pending;
  running.refs++;
  let stopped = false;
  return {
    socketDir: paths.socketDir,
    port: SOCKET_PORT,
    user: 'postgres',
    database: 'postgres',
    pid: running.pid,
    owned: running.owned,
    created: running.created,
    exited: running.exited,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (--running.refs > 0) return;
      if (inProcess.get(paths.pgdata) === pending) inProcess.delete(paths.pgdata);
      await running.stop();
    },
  };
}

/** How a process connects to the server another process started on `dataDir`. */
export async function embeddedConnection(dataDir: string): Promise<EmbeddedConnection> {
  const paths = embeddedPaths(dataDir);
  if ((await liveServer(paths)) === null) {
    throw new EmbeddedStoreError('EMBEDDED_NOT_RUNNING', `no server runs on the data dir ${resolve(dataDir)} (start HackStream first)`);
  }
  return { host: paths.socketDir, port: SOCKET_PORT, user: 'postgres', database: 'postgres' };
}

async function startOrJoin(paths: EmbeddedPaths, opts: EmbeddedStoreOptions): Promise<Running> {
  const live = await liveServer(paths);
  if (live !== null) {
    opts.logger.info({ pid: live }, 'embedded database already running: joining it');
    return joined(live);
  }
  const who = resolveRunAs(opts.runAs, opts.serviceUser);
  const root = resolve(opts.dataDir);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  if (who) checkAncestors(root, who);
  ownedDir(root, who);
  ownedDir(paths.stateDir, who);
  return withStartLock(join(paths.stateDir, 'pg.start.lock'), async () => {
    // Another process may have started it while this one waited for the lock.
    const started = await liveServer(paths);
    return started !== null ? joined(started) : startServer(paths, root, who, opts.logger);
  });
}

async function startServer(paths: EmbeddedPaths, root: string, who: RunAs | null, log: Logger): Promise<Running> {
  const created = !existsSync(join(paths.pgdata, 'PG_VERSION'));
  const bins = findBinaries(created ? undefined : paths.pgdata);
  if (created) {
    // initdb wants an empty directory; a half-made cluster from an interrupted first start is redone.
    rmSync(paths.pgdata, { recursive: true, force: true });
    ownedDir(paths.pgdata, who);
    log.info({ pgdata: paths.pgdata, version: bins.major }, 'creating the embedded database (initdb, a few seconds)');
    const t0 = Date.now();
    await initCluster(bins, paths.pgdata, who);
    log.info({ ms: Date.now() - t0 }, 'embedded database created');
  } else if (who && statSync(paths.pgdata).uid !== who.uid) {
    // A cluster copied in by root (a restored backup, a test template).
    chownTree(paths.pgdata, who);
  }
  if (paths.socketDir === inDataDirSocket(paths)) ownedDir(join(root, 'run'), who);
  ownedDir(paths.socketDir, who);
  writeConfig(paths.pgdata, paths.socketDir, who);
  try {
    return await spawnServer(paths, bins.postgres, who, created, log);
  } catch (err) {
    // A starter that does not take the lock (an older HackStream) won the race: join it.
    const winner = await liveServer(paths);
    if (winner !== null) return joined(winner);
    throw err;
  }
}

async function spawnServer(paths: EmbeddedPaths, postgres: string, who: RunAs | null, created: boolean, log: Logger): Promise<Running> {
  rotateLog(paths.logFile);
  const logFd = openSync(paths.logFile, 'a', 0o600);
  if (who) chownSync(paths.logFile, who.uid, who.gid);
  const setpriv = existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : null;
  // setpriv drops to the server's user and sets the parent-death signal, then execs postgres
  // (same pid): if this process dies, even by SIGKILL, the server gets SIGINT (fast shutdown).
  const [cmd, args] = setpriv
    ? [setpriv, [...(who ? ['--reuid', String(who.uid), '--regid', String(who.gid), '--clear-groups'] : []), '--pdeathsig', 'INT', '--', postgres, '-D', paths.pgdata]]
    : [postgres, ['-D', paths.pgdata]];
  const child = spawn(cmd, args, {
    stdio: ['ignore', logFd, logFd],
    // Its own process group: a Ctrl-C meant for this process must not stop the database under it.
    detached: true,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', PGTZ: 'UTC' },
    ...(who && !setpriv ? { uid: who.uid, gid: who.gid } : {}),
  });
  closeSync(logFd);
  child.unref();
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      done();
    });
    child.once('error', () => done());
  });
  const pid = child.pid;
  if (pid === undefined) throw new EmbeddedStoreError('EMBEDDED_START_FAILED', `cannot run ${cmd}`);
  const t0 = Date.now();
  try {
    await waitReady(paths, pid, () => exitCode !== undefined);
  } catch (err) {
    if (exitCode === undefined) process.kill(pid, 'SIGQUIT');
    await exited;
    throw new EmbeddedStoreError('EMBEDDED_START_FAILED', `${(err as Error).message}; log ${paths.logFile}: ${logTail(paths.logFile)}`);
  }
  log.info({ pid, ms: Date.now() - t0, socketDir: paths.socketDir }, 'embedded database started');
  let stopping: Promise<void> | undefined;
  const running: Running = {
    pid,
    owned: true,
    created,
    exited,
    refs: 0,
    stop() {
      stopping ??= (async () => {
        if (exitCode === undefined) {
          signal(pid, 'SIGINT'); // fast shutdown: sessions end, a checkpoint is written
          const timer = setTimeout(() => signal(pid, 'SIGQUIT'), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        // The /tmp fallback is ours alone and would otherwise outlive the data dir.
        if (paths.socketDir !== inDataDirSocket(paths)) rmSync(paths.socketDir, { recursive: true, force: true });
        log.info({ pid }, 'embedded database stopped');
      })();
      return stopping;
    },
  };
  void exited.then(() => {
    if (!stopping) log.error({ pid, code: exitCode, logFile: paths.logFile }, 'embedded database exited unexpectedly');
  });
  return running;
}

function joined(pid: number): Running {
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise<void>((done) => {
    // Not our child: no exit event, so look every second (the timer never holds the process up).
    timer = setInterval(() => {
      if (!isAlive(pid)) {
        clearInterval(timer);
        done();
      }
    }, 1_000);
    timer.unref();
  });
  return { pid, owned: false, created: false, exited, refs: 0, stop: async () => clearInterval(timer) };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

function rotateLog(file: string): void {
  try {
    if (statSync(file).size > LOG_ROTATE_BYTES) renameSync(file, `${file}.1`);
  } catch {
    // No log yet.
  }
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}
