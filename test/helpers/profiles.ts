import { execFile } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Mount points (with their fs type, source and options) at or under `prefix`. */
export function mountsUnder(prefix: string): Array<{ point: string; fstype: string; source: string; options: string }> {
  const out = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    const f = left?.split(' ') ?? [];
    const point = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (point && (point === prefix || point.startsWith(`${prefix}/`))) {
      const [fstype = '', source = ''] = right?.split(' ') ?? [];
      out.push({ point, fstype, source, options: f[5] ?? '' });
    }
  }
  return out;
}

/** Unmounts every profile volume a test left under `dataDir` (before its folder is removed). */
export async function unmountProfiles(dataDir: string): Promise<void> {
  for (const m of mountsUnder(`${dataDir}/profiles/mnt`).reverse()) await run('umount', ['-l', m.point]).catch(() => {});
}

/** Free bytes of the filesystem holding `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

/** e2fsck -n (read-only check) of an image: its exit code and output. */
export async function fsckReadOnly(image: string): Promise<{ code: number; output: string }> {
  try {
    const r = await run('e2fsck', ['-n', '-f', image]);
    return { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
