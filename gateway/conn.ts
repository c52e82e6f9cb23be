import type net from 'node:net';
import type { ProxiedSource } from '../lib/proxy-protocol.js';
import type { HelloScan } from './client-hello.js';
import type { HelloBuffer } from './hello-buffer.js';

export const CONN = Symbol('hackstream.conn');

/** Per-connection state, kept on the socket itself so that its listeners need no closures. */
export interface Conn {
  /** The client's address: the peer's, or the one a trusted proxy's PROXY header named. */
  ip: string;
  /** What the per-IP caps count it under (limitKey); null while it is not counted yet. */
  key: string | null;
  /** From a trusted proxy: its PROXY header is still being read. */
  awaitingProxy: boolean;
  /** The client a PROXY header named (null: none, or one that named no address). */
  proxied: ProxiedSource | null;
  /** Still reading the ClientHello. */
  peeking: boolean;
  /** The bytes so far, once a ClientHello (or a PROXY header) spans more than one read. */
  buf: HelloBuffer | null;
  scan: HelloScan | undefined;
}
export type EdgeSocket = net.Socket & { [CONN]?: Conn };

export function destroyOnError(this: net.Socket): void {
  this.destroy();
}
