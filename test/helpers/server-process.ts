import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../server/main.ts', import.meta.url));
const TSX = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

export interface HackstreamProcess {
  child: ChildProcess;
  /** stdout, line by line (the JSON log). */
  lines: string[];
  stderr(): string;
  exit: Promise<number | null>;
  /** undefined while it runs. */
  exitCode(): number | null | undefined;
}

/**
 * HackStream's own process (server/main.ts, the entry `npm start` runs, from the sources with
 * tsx) with only PATH and `env` in its environment.
 */
export function spawnHackstream(env: Record<string, string>, o: { cwd?: string; args?: string[] } = {}): HackstreamProcess {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, ...(o.args ?? [])], {
    ...(o.cwd ? { cwd: o.cwd } : {}),
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let err = '';
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let code: number | null | undefined;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve((code = c))));
  return { child, lines, stderr: () => err, exit, exitCode: () => code };
}

/** The first stdout line matching `re`; fails after `ms`, or as soon as the process exits. */
export async function waitForLine(p: HackstreamProcess, re: RegExp, ms: number): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const hit = p.lines.find((l) => re.test(l));
    if (hit) return hit;
    if (p.exitCode() !== undefined || Date.now() > end) {
      throw new Error(`no line matching ${re} within ${ms} ms (exit ${p.exitCode()}); stderr:\n${p.stderr()}\nstdout:\n${p.lines.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
