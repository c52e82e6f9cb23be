import { execFileSync } from 'node:child_process';
import { chownSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/*
 * The system users HackStream's unprivileged processes run as when root starts them
 * (docs/processes.md), shared by the supervisor and the embedded store's start.
 */

export interface Ids {
  uid: number;
  gid: number;
}

/** The user's uid and primary gid, or undefined when there is no such user. */
export function lookupUser(name: string): Ids | undefined {
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined; // getent exits 2 for an unknown user
  }
  const [, , uid, gid] = line.trim().split(':');
  const ids = { uid: Number(uid), gid: Number(gid) };
  return Number.isInteger(ids.uid) && Number.isInteger(ids.gid) ? ids : undefined;
}

/**
 * The user's ids, creating it as a system user (no home, no login shell) when missing.
 * Root only. `created` says whether this call made it.
 */
export function ensureSystemUser(name: string): Ids & { created: boolean } {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new Error(`"${name}" is not a valid system user name`);
  const found = lookupUser(name);
  if (found) return { ...found, created: false };
  let created = true;
  try {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    // Another process (the supervisor, the embedded store) may have created it at the same moment.
    if (!lookupUser(name)) throw new Error(`cannot create the system user "${name}" (useradd): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    created = false;
  }
  const ids = lookupUser(name);
  if (!ids) throw new Error(`no system user "${name}" after useradd`);
  return { ...ids, created };
}

/**
 * Gives `who` the directory and everything under it, without following symlinks (lstat,
 * and links are skipped: a link planted inside cannot redirect root's chown outside the tree).
 */
export function chownTree(dir: string, who: Ids): void {
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.uid !== who.uid || st.gid !== who.gid) chownSync(p, who.uid, who.gid);
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(dir);
}
