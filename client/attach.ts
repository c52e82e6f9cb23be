import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { ApiClient } from './api.js';
import { CliError, EXIT } from './errors.js';
import { qualityOptions, type Quality } from './quality.js';

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
  if (env.HACKSTREAM_XPRA) return env.HACKSTREAM_XPRA;
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

/** The xpra command line: the token is in a 0600 file, never an argument `ps` would show. */
export function xpraArgs(c: Connect, dialHost: string, files: { ca: string; token: string }, quality: Quality): string[] {
  return [
    'attach',
    `ssl://${dialHost}:${c.port}/`,
    `--ssl-ca-certs=${files.ca}`,
    `--ssl-server-hostname=${c.sni}`,
    `--password-file=${files.token}`,
    ...qualityOptions(quality),
  ];
}

function runXpra(xpra: string, args: string[]): Promise<number> {
  // Debian's xpra first: pyenv and friends put a foreign python3 ahead of /usr/bin.
  const env = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` };
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

async function sessionAlive(api: ApiClient, id: string): Promise<boolean> {
  const r = await api.raw('GET', `/v1/sessions/${id}`, undefined, await api.token());
  if (r.status === 404) return false;
  if (r.status !== 200) return true; // unsure: let the next connect decide
  return ALIVE.has(String((r.json as { state?: unknown }).state));
}

async function freshConnect(api: ApiClient, id: string): Promise<Connect> {
  try {
    return await api.call<Connect>('POST', `/v1/sessions/${id}/connect`);
  } catch (err) {
    if (err instanceof CliError && (err.apiCode === 'SESSION_NOT_RUNNING' || err.apiCode === 'NOT_FOUND')) throw new CliError(EXIT.SESSION_GONE, `session ${id} has ended (or does not exist); start a new one with hackstream launch browser`);
    throw err;
  }
}

/**
 * Attaches with the system's xpra and re-attaches by itself (fresh one-time token, backoff)
 * while the session is alive. Resolves when the user closes xpra.
 */
export async function attach(api: ApiClient, id: string, opts: { quality: Quality; dialHost?: string; first?: Connect; log: (m: string) => void }): Promise<void> {
  const xpra = findXpra();
  let next: Connect | undefined = opts.first;
  let failures = 0;
  for (;;) {
    const c = next ?? (await freshConnect(api, id));
    next = undefined;
    const dir = mkdtempSync(join(tmpdir(), 'hackstream-'));
    const files = { ca: join(dir, 'ca.pem'), token: join(dir, 'token') };
    writeFileSync(files.ca, c.ca_cert, { mode: 0o600 });
    writeFileSync(files.token, c.token, { mode: 0o600 });
    const started = Date.now();
    let code: number;
    try {
      code = await runXpra(xpra, xpraArgs(c, opts.dialHost ?? c.host, files, opts.quality));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    if (code === 0) return;
    if (!RETRY_CODES.has(code)) throw new CliError(EXIT.FAILURE, `xpra exited with code ${code}; see its messages above`);
    // A connection that held for a while starts the backoff over.
    failures = Date.now() - started > 30_000 ? 1 : failures + 1;
    if (!(await sessionAlive(api, id))) throw new CliError(EXIT.SESSION_GONE, `session ${id} has ended; start a new one with hackstream launch browser`);
    if (failures > MAX_FAILURES) throw new CliError(EXIT.UNREACHABLE, `gave up re-attaching to session ${id} after ${MAX_FAILURES} attempts; try hackstream attach ${id} later`);
    const wait = Math.min(30_000, 500 * 2 ** (failures - 1));
    opts.log(`connection lost (xpra exit ${code}); re-attaching in ${(wait / 1000).toFixed(1)} s`);
    await new Promise((r) => setTimeout(r, wait));
  }
}
