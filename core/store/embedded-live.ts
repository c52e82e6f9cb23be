import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

/*
 * Is a server running on this cluster, and is it ready? Read from postmaster.pid (the
 * postmaster's pid and, on line 8, its status) and confirmed on the socket.
 */

export const SOCKET_PORT = 5432;
export const READY_TIMEOUT_MS = 60_000;

export interface LivePaths {
  pgdata: string;
  socketDir: string;
}

/** Waits until the postmaster with `pid` says "ready" in postmaster.pid. */
export async function waitReady(paths: LivePaths, pid: number, died: () => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (let delay = 5; ; delay = Math.min(delay * 2, 50)) {
    if (died()) throw new Error('the server exited while starting');
    const pidFile = readPidFile(paths.pgdata);
    if (pidFile?.pid === pid && pidFile.status === 'ready') return;
    if (Date.now() > deadline) throw new Error(`the server was not ready within ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * The pid of a server running on this cluster that answers on its socket, or null. A
 * postmaster.pid whose process is gone (or is no postgres) is stale and is removed, with the
 * socket lock, so the next start is not refused.
 */
export async function liveServer(paths: LivePaths): Promise<number | null> {
  const info = readPidFile(paths.pgdata);
  if (!info) return null;
  if (!isAlive(info.pid) || !isPostgres(info.pid)) {
    rmSync(join(paths.pgdata, 'postmaster.pid'), { force: true });
    rmSync(join(paths.socketDir, `.s.PGSQL.${SOCKET_PORT}.lock`), { force: true });
    return null;
  }
  if (info.status !== 'ready') {
    // Starting (crash recovery) or stopping: wait for it to settle one way or the other.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      const now = readPidFile(paths.pgdata);
      if (!now || now.pid !== info.pid || !isAlive(info.pid)) return null;
      if (now.status === 'ready') break;
    }
  }
  return (await socketAnswers(join(paths.socketDir, `.s.PGSQL.${SOCKET_PORT}`))) ? info.pid : null;
}

function readPidFile(pgdata: string): { pid: number; status: string } | null {
  let text: string;
  try {
    text = readFileSync(join(pgdata, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  // Line 8 is the postmaster's status ("starting", "ready", "stopping"), padded with spaces.
  return Number.isInteger(pid) && pid > 0 ? { pid, status: (lines[7] ?? '').trim() } : null;
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((done) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A recycled pid (a reboot, a container restart) must not pass for the server. */
function isPostgres(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]?.endsWith('postgres') ?? false;
  } catch {
    return true; // cannot tell (another user's /proc entry hidden): trust the pid file
  }
}
