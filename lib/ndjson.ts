import type net from 'node:net';

/**
 * Newline-delimited JSON over a stream socket: one JSON value per line. Used by the private
 * links between HackStream's own processes (edge ↔ control). A line longer than `maxLine`
 * bytes ends the connection: a peer that never sends a newline cannot grow our buffer.
 */
export function readLines(socket: net.Socket, onLine: (value: unknown) => void, opts: { maxLine?: number; onBadLine?: (reason: string) => void } = {}): void {
  const maxLine = opts.maxLine ?? 1 << 20;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  socket.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const part = chunk.subarray(start, nl);
      const line = pendingBytes > 0 ? Buffer.concat([...pending, part]) : part;
      pending = [];
      pendingBytes = 0;
      start = nl + 1;
      if (line.length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(line.toString('utf8'));
      } catch {
        opts.onBadLine?.('not JSON');
        continue;
      }
      onLine(value);
      if (socket.destroyed) return;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      pendingBytes += rest.length;
      if (pendingBytes > maxLine) {
        opts.onBadLine?.('line too long');
        socket.destroy();
        return;
      }
      pending.push(Buffer.from(rest));
    }
  });
}

/** Writes one value as a line; false when the socket can no longer take it. */
export function writeLine(socket: net.Socket, value: unknown): boolean {
  if (socket.destroyed || !socket.writable) return false;
  socket.write(`${JSON.stringify(value)}\n`);
  return true;
}
