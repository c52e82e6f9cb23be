import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { ApiClient } from './api.js';
import { CliError, EXIT } from './errors.js';
import { qualityOptions, type Quality } from './quality.js';
import { giveUpMs, untilReachable } from './reconnect.js';

export const XPRA_INSTALL_HINT = 'xpra is not installed: sudo apt-get install xpra python3-gi-cairo';

/** xpra 3.1 exit codes after which the session may still be there: try again. */
const RETRY_CODES = new Set([1 /* connection lost */, 2 /* timeout */, 9 /* packet failure */, 13 /* remote error */, 18 /* connection failed */]);
const ALIVE = new Set(['ready', 'connected', 'idle']);
const MAX_FAILURES = 8;

interface Connect {
  host: string;
  port: number;
  sni: string;
  token: string;
  ca_cert: string;
}

/** The first `xpra` on the user's PATH (HACKSTREAM_XPRA overrides), or the install hint. */
export function findXpra(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HACKSTREAM_XPRA) {
    try {
      accessSync(env.HACKSTREAM_XPRA, constants.X_OK);
      return env.HACKSTREAM_XPRA;
    } catch {
      throw new CliError(EXIT.XPRA_MISSING, `${XPRA_INSTALL_HINT} (HACKSTREAM_XPRA=${env.HACKSTREAM_XPRA} is not an executable file)`);
    }
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, 'xpra');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  throw new CliError(EXIT.XPRA_MISSING, XPRA_INSTALL_HINT);
}

/**
 * The session's sound on the client (`--audio`): off, xpra's sound subsystem is not even
 * loaded (memory and start-up time on a weak client: `no`, not `disabled`, which still loads it
 * and asks PulseAudio); on, the speaker only, as Opus in Ogg (GStreamer's opusenc default,
 * 64 kbit/s: a small share of `low`'s 2 Mbit/s cap, where raw PCM would take 1.4). The
 * microphone is never forwarded. The server sends sound only when its policy allows audio.
 */
export function audioOptions(audio: boolean): string[] {
  return audio ? ['--speaker=on', '--speaker-codec=opus+ogg', '--microphone=disabled'] : ['--speaker=no', '--microphone=no'];
}

/**
 * xpra's environment besides the user's: its download folder (see downloadDir), and
 * setuptools' distutils shim off — xpra 3.1 looks up `pactl` with distutils, and the shim
 * would import all of setuptools for it (~0.3 s of the client's start-up here, when sound is on).
 */
export function xpraEnv(): Record<string, string> {
  return { XPRA_DOWNLOAD_DIR: downloadDir(), SETUPTOOLS_USE_DISTUTILS: 'stdlib' };
}

/** The xpra command line: the token is in a 0600 file, never an argument `ps` would show. */
export function xpraArgs(c: Connect, dialHost: string, files: { ca: string; token: string }, quality: Quality, audio = false): string[] {
  return [
    'attach',
    `ssl://${dialHost}:${c.port}/`,
    `--ssl-ca-certs=${files.ca}`,
    `--ssl-server-hostname=${c.sni}`,
    `--password-file=${files.token}`,
    ...qualityOptions(quality),
    ...audioOptions(audio),
  ];
}

/**
 * Files the session sends (its downloads, when its policy allows them: docs/downloads.md) are
 * saved, never opened, and never asked about: xpra's file transfer on, opening files off.
 */
export function fileTransferOptions(): string[] {
  return ['--file-transfer=yes', '--open-files=no'];
}

/**
 * Where xpra saves the files the session sends: HACKSTREAM_DOWNLOAD_DIR, else
 * ~/Downloads/HackStream (created, 0700). xpra 3.1's client reads only XPRA_DOWNLOAD_DIR.
 */
export function downloadDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.HACKSTREAM_DOWNLOAD_DIR || join(homedir(), 'Downloads', 'HackStream');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function runXpra(xpra: string, args: string[]): Promise<number> {
  // Debian's xpra first: pyenv and friends put a foreign python3 ahead of /usr/bin.
  const env = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}`, ...xpraEnv() };
  return new Promise((resolve, reject) => {
    const child = spawn(xpra, args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward).on('SIGTERM', forward);
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new CliError(EXIT.XPRA_MISSING, XPRA_INSTALL_HINT) : err);
    });
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward).off('SIGTERM', forward);
      resolve(code ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? 0 : 128));
    });
  });
}

/** What the server says of a session we lost: alive (come back to it) or gone. */
async function sessionAlive(api: ApiClient, id: string): Promise<boolean> {
  try {
    const s = await api.call<{ state?: unknown }>('GET', `/v1/sessions/${id}`);
    return ALIVE.has(String(s.state));
  } catch (err) {
    if (err instanceof CliError && err.apiCode === 'NOT_FOUND') return false;
    throw err;
  }
}

async function freshConnect(api: ApiClient, id: string): Promise<Connect> {
  try {
    return await api.call<Connect>('POST', `/v1/sessions/${id}/connect`);
  } catch (err) {
    if (err instanceof CliError && (err.apiCode === 'SESSION_NOT_RUNNING' || err.apiCode === 'NOT_FOUND')) throw new CliError(EXIT.SESSION_GONE, `session ${id} has ended (or does not exist); start a new one with hackstream launch browser`);
    throw err;
  }
}

export interface AttachOptions {
  quality: Quality;
  /** Play the session's sound here (`--audio`). */
  audio?: boolean;
  dialHost?: string;
  first?: Connect;
  log: (m: string) => void;
}

/** Where the attach loop stands between two runs of xpra. */
interface AttachState {
  id: string;
  quality: Quality;
  audio?: boolean;
  dialHost?: string;
  failures: number;
  /** When the current xpra run started (ms since the epoch). */
  started: number;
  /** When the connection was lost and not yet back for long (ms since the epoch): the give-up counts from it. */
  lostAt?: number;
}

/** The exit code with which the CLI hands xpra over to bin/hackstream's loop. */
export const HANDOFF_EXIT = 75;

/** Thrown once xpra's command line is written for bin/hackstream: the CLI exits HANDOFF_EXIT. */
export class HandOff extends Error {
  constructor() {
    super('xpra handed over to bin/hackstream');
  }
}

/** A request while re-attaching (a session lookup, a token) that stays silent this long is given up and tried again. */
const RECONNECT_REQUEST_TIMEOUT_MS = 20_000;

/** A run of xpra that held this long was a working connection: the backoff and the give-up start over. */
const HELD_MS = 30_000;

/**
 * After xpra exited with `code`: `'done'`, or the state and a fresh connect descriptor to
 * re-attach with, once the server answers and says the session is alive (waiting with
 * backoff through an outage, up to the give-up), or a CliError saying why not.
 */
async function afterXpra(api: ApiClient, st: AttachState, code: number, log: (m: string) => void): Promise<'done' | { st: AttachState; connect: Connect }> {
  if (code === 0) return 'done';
  if (!RETRY_CODES.has(code)) throw new CliError(EXIT.FAILURE, `xpra exited with code ${code}; see its messages above`);
  const now = Date.now();
  const held = now - st.started > HELD_MS;
  const failures = held ? 1 : st.failures + 1;
  const lostAt = held || st.lostAt === undefined ? now : st.lostAt;
  if (failures > MAX_FAILURES) throw new CliError(EXIT.UNREACHABLE, `gave up re-attaching to session ${st.id} after ${MAX_FAILURES} attempts; try hackstream attach ${st.id} later`);
  const wait = Math.min(30_000, 500 * 2 ** (failures - 1));
  log(`connection lost (xpra exit ${code}); re-attaching in ${(wait / 1000).toFixed(1)} s`);
  await new Promise((r) => setTimeout(r, wait));
  // A new one-time token each time: the gateway admits the tunnel from where /connect was called.
  const quick = api.withRequestTimeout(RECONNECT_REQUEST_TIMEOUT_MS);
  const connect = await untilReachable(
    async () => {
      if (!(await sessionAlive(quick, st.id))) throw new CliError(EXIT.SESSION_GONE, `session ${st.id} has ended; start a new one with hackstream launch browser`);
      return freshConnect(quick, st.id);
    },
    { id: st.id, lostAt, giveUpMs: giveUpMs(), log },
  );
  log(`reconnected: re-attaching to session ${st.id}`);
  return { st: { ...st, failures, lostAt }, connect };
}

/** The CA and the one-time token as 0600 files in `dir`, and xpra's command line. */
function prepareRun(dir: string, c: Connect, st: AttachState): string[] {
  const files = { ca: join(dir, 'ca.pem'), token: join(dir, 'token') };
  writeFileSync(files.ca, c.ca_cert, { mode: 0o600 });
  writeFileSync(files.token, c.token, { mode: 0o600 });
  return [...xpraArgs(c, st.dialHost ?? c.host, files, st.quality, st.audio ?? false), ...fileTransferOptions()];
}

/**
 * Hand-off mode (bin/hackstream sets HACKSTREAM_HANDOFF to a private 0700 folder): instead of
 * waiting on xpra, write its command line there and exit HANDOFF_EXIT, so that only the
 * shell waits while the session is shown (a Node process would hold ~40 MB for nothing).
 * The shell runs xpra and calls `hackstream __resume <xpra exit code>` when it exits.
 */
function handOff(dir: string, xpra: string, c: Connect, st: AttachState): never {
  // The shell runs the lines as a command: env sets xpra's environment (see xpraEnv).
  const args = ['/usr/bin/env', ...Object.entries(xpraEnv()).map(([k, v]) => `${k}=${v}`), xpra, ...prepareRun(dir, c, { ...st, started: Date.now() })];
  if (args.some((a) => a.includes('\n'))) throw new CliError(EXIT.FAILURE, 'an xpra argument contains a line break');
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...st, started: Date.now() } satisfies AttachState), { mode: 0o600 });
  writeFileSync(join(dir, 'xpra.args'), `${args.join('\n')}\n`, { mode: 0o600 });
  throw new HandOff();
}

function handoffDir(): string | undefined {
  return process.env.HACKSTREAM_HANDOFF || undefined;
}

/**
 * Attaches with the system's xpra and re-attaches by itself (fresh one-time token, backoff,
 * through network outages up to the give-up) while the session is alive. Resolves when the
 * user closes xpra. Under bin/hackstream this process exits when xpra starts (see handOff)
 * and `resume` carries on.
 */
export async function attach(api: ApiClient, id: string, opts: AttachOptions): Promise<void> {
  const xpra = findXpra();
  let st: AttachState = { id, quality: opts.quality, audio: opts.audio ?? false, failures: 0, started: 0, ...(opts.dialHost ? { dialHost: opts.dialHost } : {}) };
  const handoff = handoffDir();
  let next: Connect | undefined = opts.first;
  for (;;) {
    const c = next ?? (await freshConnect(api, id));
    next = undefined;
    if (handoff) handOff(handoff, xpra, c, st);
    const dir = mkdtempSync(join(tmpdir(), 'hackstream-'));
    st.started = Date.now();
    let code: number;
    try {
      code = await runXpra(xpra, prepareRun(dir, c, st));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const after = await afterXpra(api, st, code, opts.log);
    if (after === 'done') return;
    ({ st, connect: next } = after);
  }
}

/** `hackstream __resume <code>`: bin/hackstream's xpra exited with `code`; go on from state.json. */
export async function resume(api: ApiClient, code: number, log: (m: string) => void): Promise<void> {
  const dir = handoffDir();
  if (!dir) throw new CliError(EXIT.USAGE, '__resume is run by bin/hackstream only');
  rmSync(join(dir, 'token'), { force: true }); // spent, or useless now
  const st = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as AttachState;
  const after = await afterXpra(api, st, code, log);
  if (after === 'done') return;
  handOff(dir, findXpra(), after.connect, after.st);
}
