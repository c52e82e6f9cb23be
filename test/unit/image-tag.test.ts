import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IMAGE_DIR, REPO_ROOT, imageTag } from '../../agent/image.js';
import { scratchDirs } from '../helpers/tmp.js';

/* The session image's tag: agent/image.ts and scripts/build-image.sh must agree. */

const newDir = scratchDirs('hs-image-tag-');

/** What the build script prints for a folder (it needs no Docker for this). */
const scriptTag = (dir?: string): string =>
  execFileSync('bash', ['scripts/build-image.sh', '--print-tag', ...(dir ? ['--dir', dir] : [])], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();

const copyOfImageDir = (): string => {
  const dir = join(newDir(), 'image');
  cpSync(IMAGE_DIR, dir, { recursive: true });
  return dir;
};

describe('session image tag', () => {
  it('is hackstream/firefox-xpra:<12 hex> and equals what build-image.sh --print-tag prints', () => {
    const tag = imageTag();
    assert.match(tag, /^hackstream\/firefox-xpra:[0-9a-f]{12}$/);
    assert.equal(tag, scriptTag());
  });

  it('is the same for a copy of the folder', () => {
    const dir = copyOfImageDir();
    assert.equal(imageTag(dir), imageTag());
    assert.equal(scriptTag(dir), imageTag());
  });

  // Each change lands in a fresh copy; both sides must see it and still agree.
  const changes: Array<[string, (dir: string) => void]> = [
    ['one byte of the entrypoint', (d) => writeFileSync(join(d, 'entrypoint.sh'), '#!/bin/bash\n# changed\n', { flag: 'a' })],
    ['a new file', (d) => writeFileSync(join(d, 'extra.conf'), 'x\n')],
    ['a dot file', (d) => writeFileSync(join(d, '.hidden'), '')],
    ['a file in a sub-folder', (d) => (mkdirSync(join(d, 'sub')), writeFileSync(join(d, 'sub', 'f'), 'x'))],
    ['a renamed file (same bytes)', (d) => cpSync(join(d, 'hs-open'), join(d, 'hs-open2'))],
    [
      'names whose order differs between locales (C order: uppercase, "-" before "_", bytes of UTF-8)',
      (d) => ['B', 'a', 'a-b', 'a_b', 'a.b', 'é', 'z'].forEach((n) => writeFileSync(join(d, n), n)),
    ],
  ];
  for (const [description, change] of changes) {
    it(`changes with ${description}, and the script agrees`, () => {
      const dir = copyOfImageDir();
      change(dir);
      const tag = imageTag(dir);
      assert.notEqual(tag, imageTag());
      assert.equal(scriptTag(dir), tag);
    });
  }

  it('ignores symlinks (like find -type f), in both', () => {
    const dir = copyOfImageDir();
    symlinkSync('entrypoint.sh', join(dir, 'link'));
    assert.equal(imageTag(dir), imageTag());
    assert.equal(scriptTag(dir), imageTag());
  });
});
