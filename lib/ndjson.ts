import type net from 'node:net';
import { LineReader } from './line-reader.js';

/**
 * Newline-delimited JSON over a stream socket: one JSON value per line. Used by the private
 * links between HackStream's own processes (edge ↔ control, control → agent). A line longer than `maxLine`
 * bytes ends the connection: a peer that never sends a newline cannot grow our buffer.
 */
export function readLines(socket: net.Socket, onLine: (value: unknown) => void, opts: { maxLine?: number; onBadLine?: (reason: string) => void } = {}): void {
  const reader = new LineReader(
    opts.maxLine ?? 1 << 20,
    (line) => {
      if (line.length === 0 || socket.destroyed) return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        opts.onBadLine?.('not JSON');
        return;
      }
      onLine(value);
    },
    () => {
      opts.onBadLine?.('line too long');
      socket.destroy();
    },
  );
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
}

/** Writes one value as a line; false when the socket can no longer take it. */
export function writeLine(socket: net.Socket, value: unknown): boolean {
  if (socket.destroyed || !socket.writable) return false;
  socket.write(`${JSON.stringify(value)}\n`);
  return true;
}
