/**
 * Read buffers for the upstream → client direction of tunnels (see tunnel.ts).
 *
 * Node allocates a new 64 KiB ArrayBuffer for every socket read, and collecting them was the largest
 * single cost of relaying (docs/benchmarks.md, "Gateway"). Upstream sockets instead read into buffers
 * we own: every socket at rest shares one process-wide buffer, and a tunnel takes a buffer of its own
 * from a small pool only while a burst flows, so an idle tunnel holds no read buffer at all.
 */

/** Bytes per read: as much as one libuv read hands over by default. */
export const READ_SIZE = 64 * 1024;

/** Reads at most this long into the shared buffer are copied out; longer ones start a burst. */
export const SMALL_READ = 16 * 1024;

/** Free buffers kept for the next burst; beyond that they go to the GC. */
const MAX_FREE = 16;

/**
 * The buffer every upstream socket reads into while it has none of its own. Safe to share because a
 * read and its callback run back to back on the one JS thread, and the callback copies the bytes out
 * before anything else can read into it.
 */
export const SHARED_READ_BUFFER = Buffer.allocUnsafeSlow(READ_SIZE);

const free: Buffer[] = [];

export function takeReadBuffer(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
}

/** Only for a buffer no pending write still points into. */
export function giveReadBuffer(buf: Buffer): void {
  if (free.length < MAX_FREE) free.push(buf);
}

/** Free buffers in the pool (for tests). */
export function freeReadBuffers(): number {
  return free.length;
}

/**
 * The buffer the socket that just read should read into next. Node asks for it (the `onread.buffer`
 * function) right after the read callback, which sets it: one module-level slot instead of a closure
 * per socket. Reset to the shared buffer each time it is taken.
 */
let next: Buffer = SHARED_READ_BUFFER;

export function setNextReadBuffer(buf: Buffer): void {
  next = buf;
}

export function nextReadBuffer(): Buffer {
  const buf = next;
  next = SHARED_READ_BUFFER;
  return buf;
}
