/*
 * Container exits from the engine's event stream (`die`, `oom`) for one instance's labels.
 * The stream reconnects with backoff when it drops (engine restart, socket error) and replays
 * from shortly before the drop; replayed events are recognised and reported once. Nothing here
 * throws into the process: failures are logged and retried.
 */
import type Docker from 'dockerode';
import type { Logger } from '../lib/log.js';
import { statusCode } from './docker-engine.js';
import { LABELS, type ContainerExit } from '../core/sessions/runtime.js';

interface EngineEvent {
  Type?: string;
  Action?: string;
  time?: number;
  timeNano?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

const CONNECT_TIMEOUT_MS = 3_000;
const MAX_BACKOFF_MS = 5_000;
const SEEN_MAX = 1_000;

export class ExitWatcher {
  private readonly listeners = new Set<(exit: ContainerExit) => void>();
  private stream: NodeJS.ReadableStream | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private backoffMs = 250;
  /** Unix seconds to replay from on the next connect. */
  private since = 0;
  private readonly seen = new Set<string>();
  private readonly oomSeen = new Set<string>();
  private warned = false;

  constructor(
    private readonly docker: Docker,
    private readonly labels: string[],
    private readonly log: Logger,
  ) {}

  add(listener: (exit: ContainerExit) => void): () => void {
    this.listeners.add(listener);
    if (!this.running) {
      this.running = true;
      this.since = Date.now() / 1000 - 1;
      this.connect();
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  close(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.dropStream();
  }

  /** True while the event stream is connected (tests). */
  get connected(): boolean {
    return this.stream !== null;
  }

  private connect(): void {
    if (!this.running) return;
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(new Error('the engine did not open its event stream in time')), CONNECT_TIMEOUT_MS);
    // Fractional unix seconds (the engine reads the fraction as such).
    const since = Math.round(this.since * 1000) / 1000;
    this.docker
      .getEvents({
        since,
        filters: { type: ['container'], event: ['die', 'oom'], label: this.labels },
        abortSignal: abort.signal,
      })
      .then(
        (stream) => {
          clearTimeout(deadline);
          if (!this.running) return destroy(stream);
          this.attach(stream);
        },
        (err: unknown) => {
          clearTimeout(deadline);
          this.retry(err);
        },
      );
  }

  private attach(stream: NodeJS.ReadableStream): void {
    this.stream = stream;
    this.backoffMs = 250;
    if (this.warned) this.log.info('container event stream reconnected');
    this.warned = false;
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) this.onLine(line);
    });
    let ended = false;
    const onEnd = (err?: unknown) => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = null;
      // Replay from just before the drop (duplicates are dropped by `seen`).
      this.since = Date.now() / 1000 - 2;
      this.retry(err ?? new Error('the event stream ended'));
    };
    stream.on('error', onEnd);
    stream.on('end', () => onEnd());
    stream.on('close', () => onEnd());
  }

  private retry(err: unknown): void {
    if (!this.running) return;
    const msg = err instanceof Error ? err.message : String(err);
    if (!this.warned) this.log.warn({ err: msg }, 'container event stream lost; reconnecting');
    else this.log.debug({ err: msg }, 'container event stream still down');
    this.warned = true;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  private dropStream(): void {
    const s = this.stream;
    this.stream = null;
    if (s) destroy(s);
  }

  private onLine(line: string): void {
    let ev: EngineEvent;
    try {
      ev = JSON.parse(line) as EngineEvent;
    } catch {
      this.log.warn('unparsable container event');
      return;
    }
    const id = ev.Actor?.ID;
    if (ev.Type !== 'container' || !id || (ev.Action !== 'die' && ev.Action !== 'oom')) return;
    const key = `${ev.Action}:${id}:${ev.timeNano ?? ev.time ?? ''}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value as string);
    if (ev.Action === 'oom') return this.onOom(id);
    void this.onDie(id, ev.Actor?.Attributes ?? {});
  }

  /**
   * The OOM killer hit a process of the session: which one (xpra, Firefox's parent, a tab) is
   * unpredictable, so the session's state is unknown and it is ended. Its exit then reports
   * oomKilled.
   */
  private onOom(id: string): void {
    this.oomSeen.add(id);
    if (this.oomSeen.size > SEEN_MAX) this.oomSeen.delete(this.oomSeen.values().next().value as string);
    this.log.warn({ containerId: id }, 'session container ran out of memory; stopping it');
    this.docker
      .getContainer(id)
      .kill()
      .catch((err: unknown) => {
        if (statusCode(err) !== 404 && statusCode(err) !== 409) this.log.warn({ containerId: id, err: (err as Error).message }, 'could not stop an out-of-memory container');
      });
  }

  private async onDie(id: string, attrs: Record<string, string>): Promise<void> {
    const exitAttr = Number(attrs.exitCode);
    const exit: ContainerExit = {
      containerId: id,
      sessionId: attrs[LABELS.session] ?? '',
      exitCode: Number.isInteger(exitAttr) ? exitAttr : null,
      oomKilled: this.oomSeen.has(id),
    };
    try {
      const info = await this.docker.getContainer(id).inspect();
      exit.exitCode = info.State.ExitCode;
      exit.oomKilled = info.State.OOMKilled || exit.oomKilled;
    } catch (err) {
      // Removed already (remove --force): the event's own fields are all there is.
      if (statusCode(err) !== 404) this.log.debug({ containerId: id, err: (err as Error).message }, 'could not inspect an exited container');
    }
    this.oomSeen.delete(id);
    for (const l of [...this.listeners]) {
      try {
        l(exit);
      } catch (err) {
        this.log.error({ containerId: id, err: (err as Error).message }, 'container exit listener threw');
      }
    }
  }
}

function destroy(stream: NodeJS.ReadableStream): void {
  const s = stream as NodeJS.ReadableStream & { destroy?: () => void };
  s.destroy?.();
}
