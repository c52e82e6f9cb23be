import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { chownTree, ensureSystemUser } from '../../lib/system-user.js';
import { EmbeddedStoreError } from './embedded-errors.js';

export { chownTree };

/*
 * Who the embedded PostgreSQL server runs as. PostgreSQL refuses to run as root, so a root
 * caller runs it as an unprivileged system user (by default `hackstream`, the user the
 * supervisor runs the control process as); anyone else runs it as themselves.
 */

/** The system user HackStream's unprivileged processes run as when started by root. */
export const DEFAULT_SERVICE_USER = 'hackstream';

export interface RunAs {
  uid: number;
  gid: number;
}

const known = new Map<string, RunAs>();

/** The uid/gid of `name`, creating it as a system user (no home, no shell) when missing. Root only. */
export function ensureServiceUser(name: string = DEFAULT_SERVICE_USER): RunAs {
  const cached = known.get(name);
  if (cached) return cached;
  let found: RunAs;
  try {
    const { uid, gid } = ensureSystemUser(name);
    found = { uid, gid };
  } catch (err) {
    throw new EmbeddedStoreError('EMBEDDED_USER', err instanceof Error ? err.message : String(err), { cause: err });
  }
  known.set(name, found);
  return found;
}

/**
 * The identity to run the server as, or null for "as this process". A non-root caller can
 * only run it as itself; root gets the service user (`auto`) or the uid/gid it names.
 */
export function resolveRunAs(runAs: RunAs | 'auto' | undefined, serviceUser: string | undefined): RunAs | null {
  const me = process.getuid?.() ?? 0;
  if (me !== 0) {
    if (runAs && runAs !== 'auto' && runAs.uid !== me) {
      throw new EmbeddedStoreError('EMBEDDED_USER', `only root can run the embedded database as uid ${runAs.uid} (this process is uid ${me})`);
    }
    return null;
  }
  if (runAs && runAs !== 'auto') {
    if (runAs.uid === 0) throw new EmbeddedStoreError('EMBEDDED_USER', 'PostgreSQL refuses to run as root: give runAs a non-root uid');
    return runAs;
  }
  return ensureServiceUser(serviceUser);
}

/** Makes `dir` (0700) and gives it to `who`; an existing directory is only reached, not taken. */
export function ownedDir(dir: string, who: RunAs | null): void {
  let created = false;
  try {
    statSync(dir);
  } catch {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    created = true;
  }
  if (!who) return;
  if (created) chownSync(dir, who.uid, who.gid);
  else grantTraverse(dir, who);
}


/**
 * Lets `who` pass through `dir` without reading it: mkdtemp makes root's temp dirs 0700, and
 * the server's user must reach its cluster below. Only the search bit is added, for the
 * group, after giving the group to `who` (the owner stays). A parent we cannot fix this way
 * (owned by someone else, not root's own 0700 dir) is reported with what to do.
 */
export function grantTraverse(dir: string, who: RunAs): void {
  const st = statSync(dir);
  if (canTraverse(st, who)) return;
  if (st.uid !== 0) {
    throw new EmbeddedStoreError('EMBEDDED_DIR_UNREACHABLE', `the embedded database's user (uid ${who.uid}) cannot reach ${dir}: make it searchable (chmod o+x) or choose another data dir`);
  }
  chownSync(dir, st.uid, who.gid);
  chmodSync(dir, (st.mode & 0o7777) | 0o010);
}

/** Checks every directory above `dir` (exclusive) can be passed through by `who`. */
export function checkAncestors(dir: string, who: RunAs): void {
  for (let p = dirname(dir); ; p = dirname(p)) {
    const st = statSync(p);
    if (!canTraverse(st, who)) {
      throw new EmbeddedStoreError(
        'EMBEDDED_DIR_UNREACHABLE',
        `the embedded database's user (uid ${who.uid}) cannot pass through ${p} to reach ${dir}: make it searchable (chmod o+x) or choose a data dir elsewhere`,
      );
    }
    if (p === dirname(p)) return;
  }
}

function canTraverse(st: { uid: number; gid: number; mode: number }, who: RunAs): boolean {
  if (st.uid === who.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === who.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}
