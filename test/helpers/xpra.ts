import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's xpra first: pyenv puts a foreign python3 ahead of /usr/bin. */
export const XPRA_ENV = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` };

export interface XpraResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface XpraTarget {
  /** Where to dial (the gateway). */
  host: string;
  port: number;
  /** SNI and the name the client verifies (`--ssl-server-hostname`). */
  sni: string;
  caPem: string;
  /** The one-time token, handed over in a 0600 file, never on the command line. */
  token: string;
}

/**
 * Runs the real xpra client's `xpra <subcommand> ssl://host:port/` with full certificate
 * checking (the only way xpra 3.1 sends SNI) and the token as its password file.
 */
export async function xpraClient(subcommand: 'version' | 'info' | 'id', t: XpraTarget, timeoutMs = 30_000): Promise<XpraResult> {
  const dir = mkdtempSync(join(tmpdir(), 'hs-xpra-'));
  try {
    const ca = join(dir, 'ca.pem');
    const pw = join(dir, 'token');
    writeFileSync(ca, t.caPem);
    writeFileSync(pw, t.token, { mode: 0o600 });
    const args = [
      subcommand,
      `ssl://${t.host}:${t.port}/`,
      `--ssl-ca-certs=${ca}`,
      `--ssl-server-hostname=${t.sni}`,
      `--password-file=${pw}`,
      '--opengl=no',
    ];
    return await new Promise<XpraResult>((resolve) => {
      execFile('xpra', args, { env: XPRA_ENV, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
