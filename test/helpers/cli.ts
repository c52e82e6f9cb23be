import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PUBLIC_HOST } from './gateway.js';

/** What users run from a checkout: the shell wrapper, which runs client/cli.ts with tsx. */
export const BIN = fileURLToPath(new URL('../../bin/hackstream', import.meta.url));

/** The CLI as a child process with its own HOME and XDG_CONFIG_HOME; in network namespace `netns` when given (`ip netns exec` execs it: same pid). */
function cliProcess(args: string[], o: { home: string; env?: NodeJS.ProcessEnv; netns?: string }) {
  const [cmd, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, BIN, ...args]] : [BIN, args];
  return spawn(cmd, argv, {
    cwd: o.home,
    env: { ...process.env, HOME: o.home, XDG_CONFIG_HOME: `${o.home}/.config`, ...o.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `hackstream` CLI (bin/hackstream) as a child process with HOME
 * and XDG_CONFIG_HOME at `home`, stdin piped (closed after `stdin`), never a TTY.
 */
export function runCli(args: string[], o: { home: string; stdin?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; netns?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = cliProcess(args, o);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(o.stdin ?? '');
  });
}

export interface RunningCli {
  /** bin/hackstream's process id. */
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first capture group once stderr or stdout matches. */
  waitFor(re: RegExp, ms: number): Promise<string>;
  exited(ms: number): Promise<number | null>;
  kill(): void;
}

/** The CLI left running (launch/attach): output collected, waited on by pattern. */
export function spawnCli(args: string[], o: { home: string; env?: NodeJS.ProcessEnv; netns?: string }): RunningCli {
  const child = cliProcess(args, o);
  child.stdin.end(); // no input: a prompt reads end-of-file
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const poll = async <T>(check: () => T | undefined, ms: number, what: string): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`${what} within ${ms} ms; stderr:\n${err.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  let code: number | null | undefined;
  void exit.then((c) => (code = c));
  return {
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    waitFor: (re, ms) => poll(() => { const m = re.exec(err) ?? re.exec(out); return m ? (m[1] ?? m[0]) : undefined; }, ms, `no ${re}`),
    exited: (ms) => poll(() => (code === undefined ? undefined : { code }), ms, 'the CLI did not exit').then((c) => c.code),
    kill: () => {
      if (code === undefined) child.kill('SIGTERM');
    },
  };
}

/**
 * `hackstream configure` against a test server (its API certificate pinned by fingerprint,
 * dialled at `address`), then `hackstream login` as `user`, both in `home`; asserts both worked.
 */
export async function configureAndLogin(
  server: { dataDir: string; port: number },
  user: { username: string; password: string },
  home: string,
  o: { address?: string; netns?: string } = {},
): Promise<void> {
  const fingerprint = new X509Certificate(readFileSync(join(server.dataDir, 'certs', 'api.crt'))).fingerprint256;
  const ns = o.netns ? { netns: o.netns } : {};
  const conf = await runCli(['configure', '--api-url', `https://${PUBLIC_HOST}:${server.port}`, '--address', o.address ?? '127.0.0.1', '--ca-fingerprint', fingerprint], { home, ...ns });
  assert.equal(conf.code, 0, conf.stderr);
  const login = await runCli(['login'], { home, stdin: `${user.username}\n${user.password}\n`, ...ns });
  assert.equal(login.code, 0, login.stderr);
}
