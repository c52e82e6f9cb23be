/*
 * Who is on the other end of a Unix socket, as the kernel recorded it at connect time
 * (SO_PEERCRED): the agent lets in only the uids it is told to. Node has no API for it, so a
 * tiny N-API addon (native/peercred, built by `npm ci`) asks getsockopt.
 */
import { createRequire } from 'node:module';
import type net from 'node:net';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

interface Addon {
  peerCredentials(fd: number): PeerCredentials;
}

let addon: Addon | undefined;

function load(): Addon {
  if (addon) return addon;
  const loaded: unknown = createRequire(import.meta.url)('hackstream-peercred');
  if (typeof loaded !== 'object' || loaded === null || !('peerCredentials' in loaded) || typeof loaded.peerCredentials !== 'function') {
    throw new Error('hackstream-peercred: the addon has no peerCredentials(); rebuild it with npm ci');
  }
  addon = loaded as Addon;
  return addon;
}

/** Throws when the socket is not a connected Unix socket (no fd, or the kernel has no peer). */
export function peerCredentials(socket: net.Socket): PeerCredentials {
  // libuv's handle holds the descriptor; Node exposes no public accessor for it.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('peerCredentials: the socket has no file descriptor (closed, or not a Unix socket)');
  const cred = load().peerCredentials(fd);
  if (!Number.isInteger(cred.pid) || !Number.isInteger(cred.uid) || !Number.isInteger(cred.gid)) {
    throw new Error('peerCredentials: the addon returned no credentials');
  }
  return { pid: cred.pid, uid: cred.uid, gid: cred.gid };
}
