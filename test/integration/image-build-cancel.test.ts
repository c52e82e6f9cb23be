import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { silentLogger } from '../../lib/log.js';
import { ensureImage, imageTag } from '../../agent/image.js';

/*
 * A session image build nobody waits for any more is cancelled: the agent stops while the
 * first start builds the image (an operator's Ctrl-C), and must exit within its deadline
 * without leaving the build running. The image tag is moved aside for the test (the image
 * itself stays, under a backup tag) and put back afterwards.
 */

const run = promisify(execFile);
const docker = new Docker();
const tag = imageTag();
const [repo, version] = tag.split(':') as [string, string];
const backup = { repo, tag: `cancel-test-${version}` };
const backupRef = `${backup.repo}:${backup.tag}`;

/** Processes of this checkout's build script or of a docker client building our image. */
async function buildProcesses(): Promise<string[]> {
  const { stdout } = await run('ps', ['-eo', 'pid=,args=']);
  return stdout.split('\n').filter((l) => l.includes('scripts/build-image.sh') || (l.includes('docker') && l.includes(' build ') && l.includes(tag)));
}

async function waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('session image build cancellation', { timeout: 5 * 60_000 }, () => {
  let hadImage = false;
  before(async () => {
    hadImage = await docker
      .getImage(tag)
      .inspect()
      .then(() => true, () => false);
    if (hadImage) {
      await docker.getImage(tag).tag(backup);
      await docker.getImage(tag).remove();
    }
  });
  after(async () => {
    if (!hadImage) return;
    await docker.getImage(backupRef).tag({ repo, tag: version });
    await docker.getImage(backupRef).remove();
  });

  it('stops the build when its only waiter aborts, and rejects at once', async () => {
    const abort = new AbortController();
    let lines = 0;
    const waiting = ensureImage(docker, {
      logger: silentLogger(),
      signal: abort.signal,
      progress: () => {
        lines += 1;
        if (lines === 1) abort.abort(new Error('agent stopping'));
      },
    });
    await assert.rejects(waiting, /agent stopping/);
    await waitFor('the build script and its docker client should be gone', async () => (await buildProcesses()).length === 0, 30_000);
    assert.equal(
      await docker
        .getImage(tag)
        .inspect()
        .then(() => true, () => false),
      false,
      'a cancelled build must not produce the image',
    );
  });

  it('refuses at once when the signal has already aborted, starting nothing', async () => {
    const abort = new AbortController();
    abort.abort(new Error('already stopping'));
    await assert.rejects(ensureImage(docker, { logger: silentLogger(), signal: abort.signal }), /already stopping/);
    assert.deepEqual(await buildProcesses(), []);
  });
});
