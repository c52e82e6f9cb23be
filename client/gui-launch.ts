import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearTokens } from './config.js';
import type { Dialogs } from './dialogs.js';
import { EXIT } from './errors.js';

export type LaunchOutcome = 'started' | 'failed' | 'signed-out';

const ERROR_TITLE = 'HackStream: error';
const ATTACHING = /Session (\S+) is \w+; attaching/;
const RECONNECTING_TEXT = 'The connection to the server was lost.\nReconnecting… the browser comes back by itself, with its pages as they were, when the network returns.';

/** The CLI's lines while the server is unreachable and once it is back (client/reconnect.ts, client/attach.ts). */
const CONNECTION_LINE = /^(reconnecting…|reconnected:)/;

/**
 * 'lost' while the child's output ends in "reconnecting…" (the server unreachable; a blip
 * that re-attaches at the first try shows nothing), else 'ok'.
 */
export function connectionStatus(output: string): 'lost' | 'ok' {
  const last = output.split('\n').map((l) => l.trim()).filter((l) => CONNECTION_LINE.test(l)).pop();
  return last === undefined || last.startsWith('reconnected:') ? 'ok' : 'lost';
}

/** The CLI's own reason for failing: its last `hackstream: …` line. */
export function failureMessage(output: string, code: number | null): string {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const own = lines.filter((l) => l.startsWith('hackstream: ')).pop();
  if (own) return own.slice('hackstream: '.length);
  return lines.pop() ?? `the browser ended with exit code ${String(code)}`;
}

/**
 * Output of a child in an already unlinked 0600 file: the child writes on, the launcher reads
 * while it lives, and nothing is left in /tmp whoever exits first.
 */
function privateOutput(): { fd: number; read: () => string; close: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hackstream-launch-'));
  const file = join(dir, 'output');
  const fd = openSync(file, 'w+', 0o600);
  rmSync(dir, { recursive: true, force: true });
  let closed = false;
  return {
    fd,
    read: () => {
      if (closed) return '';
      const chunks: Buffer[] = [];
      const buf = Buffer.alloc(64 * 1024);
      for (let pos = 0, n = 0; (n = readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n) chunks.push(Buffer.from(buf.subarray(0, n)));
      return Buffer.concat(chunks).toString('utf8');
    },
    close: () => {
      if (!closed) closeSync(fd);
      closed = true;
    },
  };
}

/**
 * What runs `hackstream …`: the wrapper the launcher itself was started through (bin/hackstream
 * or /usr/bin/hackstream, which set HACKSTREAM_WRAPPER), so that only a shell waits on xpra
 * while the browser is shown; else this same node, loader flags and script.
 */
function launchCommand(): [string, string[]] {
  const wrapper = process.env.HACKSTREAM_WRAPPER;
  if (wrapper) return [wrapper, []];
  return [process.execPath, [...process.execArgv, process.argv[1] ?? '']];
}

/**
 * Starts `hackstream launch browser` as a detached child (its own session: closing the
 * launcher or its terminal leaves the browser running) and reports how the start went.
 * The child is this same CLI, so it reads the same config and tokens: nothing secret goes on
 * its command line or environment.
 */
export class Launcher {
  private readonly running = new Set<{ child: ChildProcess; stop: () => void }>();
  /** Sessions the user stopped from the launcher: their browsers' end is expected, not an error. */
  private readonly stopped = new Set<string>();

  constructor(private readonly dialogs: Dialogs) {}

  /** `hackstream launch browser [--url URL]`. */
  start(url: string | undefined): Promise<LaunchOutcome> {
    return this.run(['launch', 'browser', ...(url ? ['--url', url] : [])], `Starting a browser session${url ? ` for ${url}` : ''}…\nThe browser window opens when it is ready.`);
  }

  /** `hackstream attach ID`: a running session shown again. */
  resume(id: string): Promise<LaunchOutcome> {
    return this.run(['attach', id], `Resuming session ${id.slice(0, 8)}…\nThe browser window opens when it is ready.`);
  }

  /** Says the session is being stopped from the launcher: its browser ending shows no error. */
  stopping(id: string): void {
    this.stopped.add(id);
  }

  private run(args: string[], text: string): Promise<LaunchOutcome> {
    const out = privateOutput();
    const [command, prefix] = launchCommand();
    const env = { ...process.env };
    delete env.HACKSTREAM_HANDOFF; // the child's wrapper makes its own
    const child = spawn(command, [...prefix, ...args], {
      detached: true,
      env,
      stdio: ['ignore', out.fd, out.fd],
    });
    const progress = this.dialogs.progress('HackStream: starting', text);
    return new Promise<LaunchOutcome>((resolve) => {
      let settled = false;
      let closing = false;
      const closeProgress = () => {
        closing = true;
        progress.close();
      };
      const settle = (o: LaunchOutcome) => {
        if (settled) return;
        settled = true;
        closeProgress();
        resolve(o);
      };
      // While the network is away the browser window is gone: say why, until it is back.
      let notice: { close: () => void } | undefined;
      const showConnection = (status: 'lost' | 'ok') => {
        if (status === 'lost' && !notice) notice = this.dialogs.progress('HackStream: reconnecting', RECONNECTING_TEXT);
        if (status === 'ok' && notice) {
          notice.close();
          notice = undefined;
        }
      };
      let session: string | undefined;
      const poll = setInterval(() => {
        const text = out.read();
        session ??= ATTACHING.exec(text)?.[1];
        if (session) settle('started');
        if (settled) showConnection(connectionStatus(text));
      }, 250);
      const entry = {
        child,
        stop: () => {
          showConnection('ok');
          clearInterval(poll);
          out.close();
          child.unref();
        },
      };
      this.running.add(entry);
      // Hidden by the user: back to the launcher; a later failure still gets its dialog.
      void progress.hidden.then(() => {
        if (!closing) settle('started');
      });
      child.on('error', (err) => {
        entry.stop();
        this.running.delete(entry);
        closeProgress();
        void this.dialogs.message('error', ERROR_TITLE, `Could not start the browser: ${err.message}`).then(() => settle('failed'));
      });
      child.on('exit', (code) => {
        const output = out.read();
        entry.stop();
        this.running.delete(entry);
        if (code === 0) return settle('started');
        if (session && this.stopped.has(session)) return settle('started');
        const message = failureMessage(output, code);
        if (code === EXIT.AUTH) clearTokens();
        closeProgress();
        const shown = this.dialogs.message('error', ERROR_TITLE, code === EXIT.AUTH ? `${message}\n\nSign in again.` : message);
        // Before the start settled the launcher waits for the dialog; afterwards it shows beside the window.
        if (!settled) void shown.then(() => settle(code === EXIT.AUTH ? 'signed-out' : 'failed'));
      });
    });
  }

  /** Lets running browsers outlive the launcher. */
  detach(): void {
    for (const e of this.running) e.stop();
    this.running.clear();
  }
}
