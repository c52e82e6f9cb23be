import net from 'node:net';
import type { Upstream } from '../lib/route-table.js';
import { giveReadBuffer, nextReadBuffer, setNextReadBuffer, SHARED_READ_BUFFER, SMALL_READ, takeReadBuffer } from './relay-buffers.js';

/** What a tunnel tells the gateway: one object per gateway rather than closures per tunnel. */
export interface TunnelOwner {
  /** The upstream accepted the connection; bytes flow from now on. */
  tunnelConnected(t: Tunnel): void;
  /** The upstream failed (or timed out) before it accepted. Called at most once, before tunnelClosed. */
  tunnelFailed(t: Tunnel, err: Error): void;
  tunnelClosed(t: Tunnel): void;
}

/**
 * Queued writes to the upstream before the client is paused. Larger than Node's 16 KiB default so that
 * a bulk upload is not paused and resumed after every read (measured: fewer libuv round trips, less CPU);
 * it bounds what one tunnel buffers toward a slow upstream to this plus one read.
 */
const UPSTREAM_WRITE_HWM = 256 * 1024;

const TUNNEL = Symbol('hackstream.tunnel');
type TunnelSocket = net.Socket & { [TUNNEL]?: Tunnel };

/*
 * Listeners are module-level functions that find their tunnel on the socket (`this` is the emitter),
 * so a tunnel costs no closures per event; the one closure is the client write callback.
 */
function onUpstreamRead(this: TunnelSocket, n: number, buf: Uint8Array): boolean {
  const t = this[TUNNEL];
  return t ? t.relayDown(n, buf as Buffer) : false;
}
function onUpstreamConnect(this: TunnelSocket): void {
  this[TUNNEL]?.connected();
}
function onUpstreamError(this: TunnelSocket, err: Error): void {
  this[TUNNEL]?.fail(err);
}
function onUpstreamEnd(this: TunnelSocket): void {
  this[TUNNEL]?.client.end();
}
function onUpstreamDrain(this: TunnelSocket): void {
  this[TUNNEL]?.client.resume();
}
function onClientData(this: TunnelSocket, chunk: Buffer): void {
  const t = this[TUNNEL];
  if (t && !t.upstream.write(chunk)) this.pause();
}
function onClientEnd(this: TunnelSocket): void {
  this[TUNNEL]?.upstream.end();
}
function onSocketClose(this: TunnelSocket): void {
  this[TUNNEL]?.destroy();
}

const ONREAD = { buffer: nextReadBuffer, callback: onUpstreamRead };

/**
 * One client ↔ upstream byte pipe. Never decrypts; half-close is passed through (each direction ends
 * on its own); an error on either side tears down both. Timeouts (upstream connect, idle) are the
 * gateway's coarse sweep, not timers here.
 *
 * Upstream → client (the heavy direction: xpra's screen updates) reads into buffers from
 * relay-buffers.ts instead of a new allocation per read, and stops reading while a write to the client
 * is pending: that write may still point into the buffer, and it is the backpressure (at most one read
 * in flight per tunnel). Client → upstream uses 'data' events (Node 20 offers `onread` only on
 * sockets it connects) and pauses the client while the upstream's write queue is full.
 */
export class Tunnel {
  readonly upstream: net.Socket;
  /** performance.now() when a byte last moved either way (updated by the idle sweep). */
  activeAt: number;
  private seenBytes = 0;
  private head: Buffer | null;
  /** This tunnel's own read buffer while a burst flows (null: it reads into the shared one). */
  private own: Buffer | null = null;
  /** Upstream reading stopped until the pending client write completes. */
  private downPaused = false;
  private closed = false;
  /** Whether tunnelConnected or tunnelFailed has been called. */
  private settled = false;
  private readonly afterDownWrite = () => this.downWritten();

  constructor(
    readonly client: net.Socket,
    target: Upstream,
    /** Bytes already read from the client (the ClientHello), sent first. */
    head: Buffer,
    readonly hostname: string,
    private readonly owner: TunnelOwner,
    now: number,
  ) {
    this.head = head;
    this.activeAt = now;
    // The constructor's options type lacks `onread` (it is read there all the same), hence the variable.
    const options = { allowHalfOpen: true, noDelay: true, writableHighWaterMark: UPSTREAM_WRITE_HWM, onread: ONREAD };
    const up: TunnelSocket = new net.Socket(options);
    this.upstream = up;
    up[TUNNEL] = this;
    (client as TunnelSocket)[TUNNEL] = this;
    up.on('connect', onUpstreamConnect);
    up.on('error', onUpstreamError);
    up.on('end', onUpstreamEnd);
    up.on('drain', onUpstreamDrain);
    up.on('close', onSocketClose);
    client.on('close', onSocketClose);
    up.connect({ host: target.host, port: target.port });
  }

  /** Bytes the client sent (including the ClientHello) and bytes sent back to it. */
  get bytesFromClient(): number {
    return this.client.bytesRead;
  }

  get bytesToClient(): number {
    return this.client.bytesWritten;
  }

  get isConnected(): boolean {
    return this.settled && !this.closed;
  }

  /** For the idle sweep: notes whether bytes moved since the last call; returns when they last did. */
  touch(now: number): number {
    const seen = this.client.bytesRead + this.upstream.bytesRead;
    if (seen !== this.seenBytes) {
      this.seenBytes = seen;
      this.activeAt = now;
    }
    return this.activeAt;
  }

  /** Tears down both sides at once. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.upstream.destroy();
    // A buffer a cancelled write still points at is left to the GC rather than reused.
    if (this.own && !this.downPaused) giveReadBuffer(this.own);
    this.own = null;
    this.head = null;
    this.owner.tunnelClosed(this);
  }

  fail(err: Error): void {
    if (!this.settled) {
      this.settled = true;
      this.owner.tunnelFailed(this, err);
    }
    this.destroy();
  }

  /** @internal upstream 'connect' */
  connected(): void {
    if (this.closed) return;
    this.settled = true;
    this.owner.tunnelConnected(this);
    const { client, upstream } = this;
    if (this.head) upstream.write(this.head);
    this.head = null;
    client.on('data', onClientData);
    // A client that half-closed right after its hello has already emitted 'end' (while paused).
    if (client.readableEnded) upstream.end();
    else client.on('end', onClientEnd);
    client.resume();
  }

  /**
   * @internal The upstream read `n` bytes into `buf`. Writes them to the client; returns false (stop
   * reading) while that write is pending. Reads into the shared buffer are copied out at once; a long
   * one starts a burst, for which the tunnel reads into a pooled buffer of its own and writes from it
   * without copying, until a short read with no write pending ends the burst.
   */
  relayDown(n: number, buf: Buffer): boolean {
    if (this.closed) return false;
    let chunk: Buffer;
    let next: Buffer = SHARED_READ_BUFFER;
    if (buf === SHARED_READ_BUFFER) {
      if (n <= SMALL_READ) {
        chunk = Buffer.allocUnsafe(n);
        buf.copy(chunk, 0, 0, n);
      } else {
        next = this.own ?? takeReadBuffer();
        buf.copy(next, 0, 0, n);
        chunk = next.subarray(0, n);
      }
    } else {
      next = buf;
      chunk = buf.subarray(0, n);
    }
    this.own = next === SHARED_READ_BUFFER ? null : next;
    this.client.write(chunk, this.afterDownWrite);
    // Node completes a write synchronously when the kernel took every byte; otherwise it is queued.
    const pending = this.client.writableLength > 0;
    if (this.own && !pending && n <= SMALL_READ) {
      giveReadBuffer(this.own);
      this.own = null;
      next = SHARED_READ_BUFFER;
    }
    setNextReadBuffer(next);
    if (!pending) return true;
    this.downPaused = true;
    return false;
  }

  private downWritten(): void {
    if (!this.downPaused || this.closed || this.client.writableLength > 0) return;
    this.downPaused = false;
    this.upstream.resume();
  }
}
