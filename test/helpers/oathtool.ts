import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * TOTP codes from an independent implementation, Debian's `oathtool` (OATH Toolkit): the
 * code of a base32 secret at `atMs` (SHA-1, 6 digits, 30 s), and with `window` the codes of
 * the following steps too (`-w`).
 */
export async function oathtoolTotp(secret: string, atMs: number, window = 0): Promise<string[]> {
  const at = `@${Math.floor(atMs / 1000)}`;
  const { stdout } = await run('oathtool', ['--totp', '-b', secret, '--now', at, '-w', String(window)]);
  const codes = stdout.trim().split('\n');
  if (codes.length !== window + 1 || !codes.every((c) => /^\d{6}$/.test(c))) throw new Error(`oathtool printed ${JSON.stringify(stdout)}`);
  return codes;
}

/** One code: `oathtoolTotp` without a window. */
export async function oathtoolCode(secret: string, atMs: number): Promise<string> {
  const [code] = await oathtoolTotp(secret, atMs);
  if (!code) throw new Error('oathtool printed no code');
  return code;
}

export const STEP_MS = 30_000;

/**
 * Resolves at a moment at least `marginMs` away from either edge of its 30 s step and
 * returns that moment's step start: codes computed for offsets from it stay in their steps
 * while a request is on its way. Waits (polling the clock) only when close to an edge.
 */
export async function midStep(marginMs = 5000): Promise<number> {
  for (;;) {
    const now = Date.now();
    const into = now % STEP_MS;
    if (into >= marginMs && STEP_MS - into >= marginMs) return now - into;
    await new Promise((r) => setTimeout(r, Math.min(250, STEP_MS - into)));
  }
}
