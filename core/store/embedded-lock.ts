import { readFileSync, rmSync, writeFileSync } from 'node:fs';

/*
 * Serialises "start the server" between processes on one data dir: the supervisor may start
 * control and the agent together on a fresh data dir, and two initdb runs into one directory
 * would destroy each other. The lock is a file naming its holder's pid; a holder that died
 * (SIGKILL mid-initdb) leaves a stale lock that the next starter takes over.
 */

const POLL_MS = 50;
const WAIT_MS = 120_000;

/** Runs `fn` while holding the lock file; waits for a live holder, takes over a dead one's. */
export async function withStartLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readOr(lockFile));
    if (!Number.isInteger(holder) || holder <= 0 || holder === process.pid || !alive(holder)) {
      rmSync(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`process ${holder} holds ${lockFile} for too long`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  try {
    return await fn();
  } finally {
    rmSync(lockFile, { force: true });
  }
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
