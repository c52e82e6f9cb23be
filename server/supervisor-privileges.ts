import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { chownTree, ensureSystemUser as createSystemUser } from '../lib/system-user.js';
import type { Ids } from './supervisor-instances.js';

/*
 * Who runs what (docs/processes.md): as root the supervisor runs control as `hackstream` and
 * the edge as `hackstream-edge`, and prepares the directories they meet each other in.
 */

export const CONTROL_USER = 'hackstream';
export const EDGE_USER = 'hackstream-edge';

/** The user's uid/gid, creating it as a system user (no home, no login shell) when missing. */
export function ensureSystemUser(name: string, logger: Logger): Ids {
  const { created, ...ids } = createSystemUser(name);
  if (created) logger.info({ user: name }, 'system user created');
  return ids;
}

export interface RunDirs {
  /** `<dataDir>/run`, given to every child as HACKSTREAM_RUN_DIR. */
  runDir: string;
}

/**
 * As root: `<dataDir>` traversable by the service users, `run/` 0755 root, `run/control/`
 * hackstream:hackstream-edge 2750 (control's sockets, the edge may connect), `run/agent/`
 * root:hackstream 2750 (the agent's socket, control may connect), and what control writes
 * (certs/, state/, plugin-data/) owned by hackstream. Ownership and modes are set again at every start, so
 * a data dir an older all-in-one root process wrote is taken over.
 */
export function prepareDataDir(dataDir: string, ids: { control: Ids; edge: Ids } | undefined, logger: Logger): RunDirs {
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  const runDir = join(dataDir, 'run');
  // setgid: a socket made inside gets the directory's group, so control's 0660 sockets are
  // hackstream-edge's to connect to (control cannot chgrp to a group it is not in).
  const dirs: Array<{ path: string; mode: number; owner?: Ids }> = [
    { path: runDir, mode: 0o755, owner: { uid: 0, gid: 0 } },
    { path: join(runDir, 'control'), mode: 0o2750, ...(ids ? { owner: { uid: ids.control.uid, gid: ids.edge.gid } } : {}) },
    { path: join(runDir, 'agent'), mode: 0o2750, ...(ids ? { owner: { uid: 0, gid: ids.control.gid } } : {}) },
  ];
  for (const d of dirs) {
    mkdirSync(d.path, { recursive: true, mode: d.mode });
    if (ids && d.owner) chownSync(d.path, d.owner.uid, d.owner.gid);
    chmodSync(d.path, d.mode);
  }
  if (!ids) return { runDir };
  // mkdtemp and umask 077 make 0700 dirs: the service users only need to pass through.
  const st = statSync(dataDir);
  if ((st.mode & 0o011) !== 0o011 && st.uid === 0) {
    chmodSync(dataDir, (st.mode & 0o7777) | 0o011);
    logger.info({ dataDir, mode: ((st.mode & 0o7777) | 0o011).toString(8) }, 'data dir made traversable for the service users');
  }
  for (let p = dirname(dataDir); ; p = dirname(p)) {
    if ((statSync(p).mode & 0o001) === 0) {
      logger.warn({ dataDir, dir: p }, 'the service users cannot pass through a parent of the data dir: chmod o+x it or choose another data dir');
    }
    if (p === dirname(p)) break;
  }
  for (const name of ['certs', 'state', 'plugin-data']) {
    const dir = join(dataDir, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownTree(dir, ids.control);
  }
  return { runDir };
}

