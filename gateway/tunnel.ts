import net from 'node:net';
import type { Upstream } from '../lib/route-table.js';

export interface TunnelOptions {
  client: net.Socket;
  upstream: Upstream;
  /** Bytes already read from the client (the ClientHello), sent first. */
  head: Buffer;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Called once the upstream accepted (true) or failed before connecting (false). */
  onConnect: (ok: boolean, err?: Error) => void;
  onClose: (t: Tunnel) => void;
}

/**
 * One client ↔ upstream byte pipe. Never decrypts; half-close is passed through
 * (each direction ends on its own); an error or idle timeout on either side tears down both.
 */
export class Tunnel {
  readonly upstream: net.Socket;
  private closed = false;
  /** Whether onConnect has been called. */
  private settled = false;

  constructor(private readonly opts: TunnelOptions) {
    const { client, upstream: target } = opts;
    // Interactive traffic (xpra): no Nagle delay on either leg.
    client.setNoDelay(true);
    this.upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    const connectTimer = setTimeout(() => this.fail(new Error('upstream connect timeout')), opts.connectTimeoutMs);
    this.upstream.once('connect', () => {
      clearTimeout(connectTimer);
      this.settled = true;
      opts.onConnect(true);
      this.upstream.write(opts.head);
      client.pipe(this.upstream);
      this.upstream.pipe(client);
      client.resume();
    });
    for (const s of [client, this.upstream]) {
      s.setTimeout(opts.idleTimeoutMs, () => this.destroy());
      s.on('error', (err) => this.fail(err));
      s.on('close', () => this.destroy());
    }
    this.upstream.once('close', () => clearTimeout(connectTimer));
  }

  /** Bytes the client sent (including the ClientHello) and bytes sent back to it. */
  get bytesFromClient(): number {
    return this.opts.client.bytesRead;
  }

  get bytesToClient(): number {
    return this.opts.client.bytesWritten;
  }

  /** Tears down both sides at once. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.client.destroy();
    this.upstream.destroy();
    this.opts.onClose(this);
  }

  private fail(err: Error): void {
    if (!this.settled) {
      this.settled = true;
      this.opts.onConnect(false, err);
    }
    this.destroy();
  }
}
