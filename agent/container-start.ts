/*
 * How a session container comes up: the TLS key handed over on its stdin, then its log read
 * until the entrypoint says HACKSTREAM-READY (or HACKSTREAM-FAILED, exits, or time runs out).
 */
import type Docker from 'dockerode';
import { readLines } from './docker-engine.js';
import { ContainerStartError } from './errors.js';

/** Log lines kept for a start failure's report. */
const LOG_TAIL = 20;

/**
 * Writes the session's TLS key to the container's stdin and closes it (the container is
 * created with StdinOnce, so the engine then closes the entrypoint's stdin: end of the key).
 * The key thus never appears in the container's config (inspect, the engine's files); it
 * passes through the engine's in-memory pipe into the container's tmpfs.
 */
export function handOverKey(stdin: NodeJS.ReadWriteStream, keyPem: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stdin.once('error', reject);
    stdin.end(keyPem, () => {
      stdin.off('error', reject);
      resolve();
    });
  });
}

/**
 * Resolves when `stream` (the container's followed log) prints HACKSTREAM-READY on stdout;
 * rejects with a ContainerStartError (failed, exited, timeout; with the log's last lines), the
 * abort reason, or `streamError` of the log stream's own error. Closes the stream either way.
 */
export async function untilReady(
  container: Docker.Container,
  stream: NodeJS.ReadableStream,
  o: { timeoutMs: number; signal?: AbortSignal; streamError: (err: Error) => Error },
): Promise<void> {
  const { signal } = o;
  const tail: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new ContainerStartError(`the session container was not ready within ${o.timeoutMs} ms`, 'timeout', [...tail])), o.timeoutMs);
      onAbort = () => reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      readLines(stream, (line, source) => {
        tail.push(line);
        if (tail.length > LOG_TAIL) tail.shift();
        if (source === 'stdout' && /^HACKSTREAM-READY\s*$/.test(line)) resolve();
        const failed = /^HACKSTREAM-FAILED\s*(.*)$/.exec(line);
        if (failed) reject(new ContainerStartError(`the session container failed: ${failed[1] || 'no reason given'}`, 'failed', [...tail]));
      });
      stream.on('error', (err: Error) => reject(o.streamError(err)));
      // The log ends when the container stops: report how it ended.
      stream.on('end', () => {
        container.inspect().then((info) => {
          const { ExitCode: code, OOMKilled: oom } = info.State;
          const msg = `the session container exited with code ${code}${oom ? ' (out of memory)' : ''} before it was ready`;
          reject(new ContainerStartError(msg, 'exited', [...tail], code, oom));
        }, reject);
      });
    });
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  }
}
