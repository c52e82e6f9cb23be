import { parseProxyHeader } from '../lib/proxy-protocol.js';
import type { Conn } from './conn.js';
import { HelloBuffer } from './hello-buffer.js';

export type ProxyStep =
  /** More bytes are needed (the ones so far are kept in `c.buf`). */
  | { kind: 'wait' }
  | { kind: 'refuse'; reason: 'proxy_missing' | 'proxy_invalid'; detail: string }
  /** The header was read; `rest` is what followed it. */
  | { kind: 'done'; rest: Buffer };

/**
 * One read of a trusted proxy's connection while its PROXY header is incomplete: `view` is every
 * byte so far. On `done`, the client the header names is in `c.ip` and `c.proxied`, and `c.buf`
 * is emptied: the bytes after the header start the ClientHello.
 */
export function proxyStep(c: Conn, view: Buffer): ProxyStep {
  const r = parseProxyHeader(view);
  switch (r.kind) {
    case 'incomplete':
      if (!c.buf) {
        c.buf = new HelloBuffer(256);
        c.buf.append(view);
      }
      return { kind: 'wait' };
    case 'missing':
      return { kind: 'refuse', reason: 'proxy_missing', detail: 'no header' };
    case 'invalid':
      return { kind: 'refuse', reason: 'proxy_invalid', detail: r.reason };
    case 'ok':
      c.awaitingProxy = false;
      c.buf = null;
      if (r.source) {
        c.proxied = r.source;
        c.ip = r.source.address;
      }
      return { kind: 'done', rest: view.subarray(r.length) };
  }
}
