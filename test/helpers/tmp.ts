import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/** Returns a maker of fresh folders under one temp root, removed when the test file ends. */
export function scratchDirs(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  // A server started on one of these runs its processes as other users, who must pass through.
  chmodSync(root, 0o711);
  after(() => rmSync(root, { recursive: true, force: true }));
  let count = 0;
  return () => {
    const dir = join(root, String(count++));
    mkdirSync(dir);
    return dir;
  };
}
