import type net from 'node:net';
import { peerCredentials } from '../lib/peercred.js';

/**
 * A peer check for a private Unix socket: only processes running as one of `uids` may use it
 * (the kernel's record of the connecting process, SO_PEERCRED). Returns true, or why not.
 */
export function allowUids(uids: readonly number[]): (socket: net.Socket) => true | string {
  const allowed = new Set(uids);
  return (socket) => {
    try {
      const { uid, pid } = peerCredentials(socket);
      return allowed.has(uid) ? true : `uid ${uid} (pid ${pid}) is not allowed`;
    } catch (err) {
      return `no peer credentials: ${(err as Error).message}`;
    }
  };
}

/** A uid from the environment (set by the supervisor), else this process's own. */
export function uidFromEnv(name: string): number {
  const raw = process.env[name];
  if (raw !== undefined && /^\d{1,10}$/.test(raw)) return Number(raw);
  return process.getuid?.() ?? 0;
}
