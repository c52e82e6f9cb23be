import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { Logger } from '../../lib/log.js';

/*
 * The embedded store: PGlite (PostgreSQL compiled to WASM, in this process) served over the
 * PostgreSQL wire protocol on a private Unix socket, so the stock `pg` driver and TypeORM's
 * postgres driver talk to it exactly as they talk to a real server. PGlite has one backend;
 * the client side must use a pool of ONE connection (see database.ts), which makes every
 * transaction run alone, start to finish.
 */

/** Where the embedded store keeps its files under the data dir. */
export function embeddedPaths(dataDir: string): { stateDir: string; pgdata: string; lockFile: string } {
  const stateDir = join(resolve(dataDir), 'state');
  return { stateDir, pgdata: join(stateDir, 'pgdata'), lockFile: join(stateDir, 'embedded-db.lock') };
}

export interface EmbeddedServer {
  /** Directory holding the socket `.s.PGSQL.<port>`: pg's `host`. */
  socketDir: string;
  port: number;
  /** True when this open created the database files (first start). */
  created: boolean;
  close(): Promise<void>;
}

// The port only names the socket file; nothing listens on TCP.
const SOCKET_PORT = 5432;
const heldLocks = new Set<string>();

export async function startEmbedded(dataDir: string, logger: Logger): Promise<EmbeddedServer> {
  const { stateDir, pgdata, lockFile } = embeddedPaths(dataDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  acquireLock(lockFile);
  const created = !existsSync(join(pgdata, 'PG_VERSION'));
  let db: PGlite | undefined;
  let server: PGLiteSocketServer | undefined;
  let socketDir: string | undefined;
  try {
    if (created) logger.info({ pgdata }, 'creating the embedded database (first start takes a few seconds)');
    mkdirSync(pgdata, { recursive: true, mode: 0o700 });
    db = await PGlite.create(pgdata);
    // mkdtemp makes a 0700 directory: only this user can reach the socket, which has no password.
    socketDir = mkdtempSync(join(tmpdir(), 'hackstream-db-'));
    // maxConnections 2 leaves room for a pool client that reconnects while its old socket closes;
    // the pool never uses more than one at a time.
    server = new PGLiteSocketServer({ db, path: join(socketDir, `.s.PGSQL.${SOCKET_PORT}`), maxConnections: 2 });
    await server.start();
  } catch (err) {
    await server?.stop().catch(() => undefined);
    await db?.close().catch(() => undefined);
    if (socketDir) rmSync(socketDir, { recursive: true, force: true });
    releaseLock(lockFile);
    throw new Error(`embedded database: cannot open ${pgdata}`, { cause: err });
  }
  const [pg, srv, dir] = [db, server, socketDir];
  let closed = false;
  return {
    socketDir: dir,
    port: SOCKET_PORT,
    created,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await srv.stop();
        await pg.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
        releaseLock(lockFile);
      }
    },
  };
}

interface LockInfo {
  pid: number;
  /** Process start time from /proc, so a reused pid is not mistaken for the owner. */
  started: string | null;
  id: string;
}

/**
 * PGlite must be opened by one process only: two would corrupt the files. A lock file names
 * the owner; a lock whose process is gone (or whose pid now belongs to another process) is stale.
 */
function acquireLock(lockFile: string): void {
  if (heldLocks.has(lockFile)) throw new Error(`embedded database: ${lockFile} is already open in this process`);
  const mine: LockInfo = { pid: process.pid, started: processStart(process.pid), id: randomUUID() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, JSON.stringify(mine), { flag: 'wx', mode: 0o600 });
      heldLocks.add(lockFile);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readLock(lockFile);
    if (owner && owner.pid !== process.pid && isAlive(owner)) {
      throw new Error(
        `embedded database: the data dir is in use by process ${owner.pid} (${lockFile}); stop it, or delete the lock file if that process is not HackStream`,
      );
    }
    // Stale (the owner died, or it was this pid in an earlier life, e.g. pid 1 in a container).
    rmSync(lockFile, { force: true });
  }
  throw new Error(`embedded database: cannot take the lock ${lockFile}`);
}

function releaseLock(lockFile: string): void {
  if (!heldLocks.delete(lockFile)) return;
  try {
    unlinkSync(lockFile);
  } catch {
    // Already gone: nothing to release.
  }
}

function readLock(lockFile: string): LockInfo | null {
  try {
    const v: unknown = JSON.parse(readFileSync(lockFile, 'utf8'));
    if (typeof v !== 'object' || v === null) return null;
    const o = v as Record<string, unknown>;
    if (typeof o.pid !== 'number' || typeof o.id !== 'string') return null;
    return { pid: o.pid, id: o.id, started: typeof o.started === 'string' ? o.started : null };
  } catch {
    return null;
  }
}

function isAlive(owner: LockInfo): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  const now = processStart(owner.pid);
  return owner.started === null || now === null || now === owner.started;
}

function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); fields are counted after the ")" that ends the command name.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
