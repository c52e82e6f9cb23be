import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XPRA_ENV, type XpraTarget } from './xpra.js';

export interface AttachedXpra {
  child: ChildProcess;
  exited(): boolean;
  /** The client's last output (for failure messages). */
  output(): string;
  /** Kills the client and removes its token and CA files. */
  close(): void;
}

/**
 * A real `xpra attach` through the gateway on `display` (the token in a 0600 file), with no
 * sound, clipboard or tray; `extra` adds options, `env` environment variables.
 */
export function xpraAttach(t: XpraTarget, display: string, opts: { extra?: string[]; env?: Record<string, string> } = {}): AttachedXpra {
  const dir = mkdtempSync(join(tmpdir(), 'hs-xpra-attach-'));
  writeFileSync(join(dir, 'ca.pem'), t.caPem);
  writeFileSync(join(dir, 'token'), t.token, { mode: 0o600 });
  const args = [
    'attach',
    `ssl://${t.host}:${t.port}/`,
    `--ssl-ca-certs=${join(dir, 'ca.pem')}`,
    `--ssl-server-hostname=${t.sni}`,
    `--password-file=${join(dir, 'token')}`,
    '--opengl=no',
    '--tray=no',
    '--notifications=no',
    '--speaker=no',
    '--microphone=no',
    '--webcam=no',
    '--clipboard=no',
    ...(opts.extra ?? []),
  ];
  const child = spawn('xpra', args, { env: { ...XPRA_ENV, DISPLAY: display, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let done = false;
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => (done = true));
  return {
    child,
    exited: () => done,
    output: () => out,
    close() {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
