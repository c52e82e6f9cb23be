/*
 * Persistent Firefox profiles: one ext4 filesystem per user, in a sparse image file
 * <dir>/<userId>.img, loop-mounted (nosuid, nodev, noexec) at <dir>/mnt/<userId> and
 * bind-mounted into that user's session container. The filesystem's own size is the quota:
 * a page that fills it gets ENOSPC inside its container and nothing else notices. Paths are
 * made here from a user id that must be a uuid; a caller never names one.
 *
 * Volumes stay mounted while the agent runs (a session can start without a mount, and usage is
 * one statfs); mountAll() puts them back after a reboot. Only remove() unmounts.
 */
import { execFile } from 'node:child_process';
import { mkdir, open, readFile, readdir, rename, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../lib/log.js';
import type { ProfileUsage } from '../lib/agent-protocol.js';
import { AgentError } from './errors.js';

const run = promisify(execFile);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MB = 1024 * 1024;
/** The session image's user: owns the filesystem's root directory. */
export const PROFILE_OWNER = '1000:1000';
const MOUNT_OPTIONS = 'loop,nosuid,nodev,noexec,noatime';
const TOOL_TIMEOUT_MS = 120_000;

/** Whether a live container has `mountPath` mounted (then its Firefox holds the profile). */
export interface ProfileUsers {
  inUse(mountPath: string): Promise<boolean>;
}

export interface ProfileStoreOptions {
  /** <dataDir>/profiles. */
  dir: string;
  /** The agent's ceiling for one volume. */
  maxMb: number;
  users: ProfileUsers;
  logger: Logger;
}

export interface EnsureResult {
  usage: ProfileUsage;
  created: boolean;
  grownFromMb: number | null;
}

export class ProfileStore {
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Users whose container is being created on their volume (it may not show in the engine yet). */
  private readonly launching = new Set<string>();
  private readonly log: Logger;

  constructor(private readonly opts: ProfileStoreOptions) {
    this.log = opts.logger.child({ component: 'profiles' });
  }

  get maxMb(): number {
    return this.opts.maxMb;
  }

  /** Where the volume of `userId` is mounted on the host (the container's bind source). */
  mountPath(userId: string): string {
    return join(this.opts.dir, 'mnt', checkUser(userId));
  }

  private imagePath(userId: string): string {
    return join(this.opts.dir, `${checkUser(userId)}.img`);
  }

  /**
   * Creates the volume at `sizeMb` when there is none, grows it when it is smaller (never
   * shrinks: that could cut the user's files), and mounts it. Idempotent.
   */
  ensure(userId: string, sizeMb: number): Promise<EnsureResult> {
    if (sizeMb > this.opts.maxMb) throw new AgentError('LIMIT_EXCEEDED', `a profile of ${sizeMb} MB is over the agent's ${this.opts.maxMb} MB`);
    return this.withUser(userId, async () => {
      const image = this.imagePath(userId);
      const current = await imageMb(image);
      let created = false;
      let grownFromMb: number | null = null;
      if (current === null) {
        await this.make(image, sizeMb);
        created = true;
        this.log.info({ userId, sizeMb }, 'profile volume created');
      } else if (current < sizeMb) {
        await this.grow(userId, image, current, sizeMb);
        grownFromMb = current;
      }
      await this.mount(image, this.mountPath(userId));
      return { usage: await this.statfs(userId, image), created, grownFromMb };
    });
  }

  /** The mounted volume's usage, or null when the user has none. */
  usage(userId: string): Promise<ProfileUsage | null> {
    return this.withUser(userId, async () => {
      const image = this.imagePath(userId);
      if ((await imageMb(image)) === null) return null;
      await this.mount(image, this.mountPath(userId));
      return this.statfs(userId, image);
    });
  }

  /**
   * Runs `fn` (the container's create) with the user's volume mounted and no live container
   * using it (one Firefox per profile). The check and the mark that a create is under way are
   * taken under the user's lock, so two creates cannot both pass; the create itself runs
   * outside it, so usage stays one statfs away meanwhile.
   */
  async withFreeProfile<T>(userId: string, fn: (mountPath: string) => Promise<T>): Promise<T> {
    const mountPath = await this.withUser(userId, async () => {
      const image = this.imagePath(userId);
      if ((await imageMb(image)) === null) throw new AgentError('PROFILE_MISSING', 'this user has no persistent profile yet');
      await this.refuseInUse(userId, 'the persistent profile is in use by a live session');
      const path = this.mountPath(userId);
      await this.mount(image, path);
      this.launching.add(userId);
      return path;
    });
    try {
      return await fn(mountPath);
    } finally {
      this.launching.delete(userId);
    }
  }

  /** Unmounts and deletes the volume; refused while a live container uses it. False: none. */
  remove(userId: string): Promise<boolean> {
    return this.withUser(userId, async () => {
      const image = this.imagePath(userId);
      const mountPath = this.mountPath(userId);
      await this.refuseInUse(userId, 'the persistent profile is in use by a live session');
      if (await mountedSource(mountPath)) await tool('umount', [mountPath]);
      await rmdir(mountPath).catch(ignoreMissing);
      const existed = (await imageMb(image)) !== null;
      await rm(image, { force: true });
      if (existed) this.log.info({ userId }, 'profile volume deleted');
      return existed;
    });
  }

  /** Mounts every volume that is not (after a reboot); returns how many are mounted. */
  async mountAll(): Promise<number> {
    await mkdir(join(this.opts.dir, 'mnt'), { recursive: true, mode: 0o700 });
    let n = 0;
    for (const name of await readdir(this.opts.dir)) {
      const userId = /^(.+)\.img$/.exec(name)?.[1];
      if (!userId || !UUID.test(userId)) continue;
      try {
        await this.withUser(userId, () => this.mount(this.imagePath(userId), this.mountPath(userId)));
        n++;
      } catch (err) {
        this.log.error({ userId, err: (err as Error).message }, 'could not mount a profile volume');
      }
    }
    return n;
  }

  private async make(image: string, sizeMb: number): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const partial = `${image}.new`;
    await rm(partial, { force: true });
    try {
      const fh = await open(partial, 'wx', 0o600);
      try {
        await fh.truncate(sizeMb * MB);
      } finally {
        await fh.close();
      }
      // -m 0: no blocks kept for root (nobody is root inside); the root directory is the session user's.
      await tool('mkfs.ext4', ['-q', '-F', '-m', '0', '-L', 'hs-profile', '-E', `root_owner=${PROFILE_OWNER}`, partial]);
      await rename(partial, image);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  }

  /** Offline growth (online resize2fs is refused on some hosts): unmount, grow, check. */
  private async grow(userId: string, image: string, fromMb: number, toMb: number): Promise<void> {
    const mountPath = this.mountPath(userId);
    await this.refuseInUse(userId, 'the persistent profile cannot grow while a live session uses it');
    if (await mountedSource(mountPath)) await tool('umount', [mountPath]);
    await fsck(image);
    const fh = await open(image, 'r+');
    try {
      await fh.truncate(toMb * MB);
    } finally {
      await fh.close();
    }
    await tool('resize2fs', [image]);
    this.log.info({ userId, fromMb, toMb }, 'profile volume grown');
  }

  /** PROFILE_BUSY while a live container holds the volume or one is being created on it. */
  private async refuseInUse(userId: string, message: string): Promise<void> {
    if (this.launching.has(userId) || (await this.opts.users.inUse(this.mountPath(userId)))) throw new AgentError('PROFILE_BUSY', message);
  }

  private async mount(image: string, mountPath: string): Promise<void> {
    if (await mountedSource(mountPath)) return;
    await mkdir(mountPath, { recursive: true, mode: 0o700 });
    // After a crash the journal replays on mount; a damaged volume is repaired (or refused) first.
    await fsck(image);
    await tool('mount', ['-t', 'ext4', '-o', MOUNT_OPTIONS, image, mountPath]);
  }

  private async statfs(userId: string, image: string): Promise<ProfileUsage> {
    const s = await statfs(this.mountPath(userId));
    return {
      sizeMb: (await imageMb(image)) ?? 0,
      usedMb: Math.ceil(((s.blocks - s.bfree) * s.bsize) / MB),
      freeMb: Math.floor((s.bavail * s.bsize) / MB),
    };
  }

  private withUser<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    checkUser(userId);
    const prev = this.locks.get(userId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(userId, tail);
    void tail.then(() => {
      if (this.locks.get(userId) === tail) this.locks.delete(userId);
    });
    return next;
  }
}

function checkUser(userId: string): string {
  // The protocol's schema already refused anything else; a path made from a non-uuid never exists.
  if (!UUID.test(userId)) throw new AgentError('VALIDATION_FAILED', 'userId: must be a user id (a uuid)');
  return userId;
}

async function imageMb(image: string): Promise<number | null> {
  try {
    return Math.floor((await stat(image)).size / MB);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The device mounted at `mountPath` (from /proc/self/mountinfo), or null. */
export async function mountedSource(mountPath: string): Promise<string | null> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ');
    const point = left?.split(' ')[4];
    if (point !== undefined && unescapeMount(point) === mountPath) return right?.split(' ')[1] ?? '';
  }
  return null;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** e2fsck -p: exit 0–3 is clean or repaired; 4 and up leaves the volume unmounted. */
async function fsck(image: string): Promise<void> {
  try {
    await run('e2fsck', ['-p', image], { timeout: TOOL_TIMEOUT_MS });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number' && code < 4) return;
    throw new Error(`e2fsck found errors it could not repair in a profile volume (exit ${String(code)})`, { cause: err });
  }
}

async function tool(cmd: string, args: string[]): Promise<void> {
  try {
    await run(cmd, args, { timeout: TOOL_TIMEOUT_MS });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim().slice(0, 300);
    throw new Error(`${cmd} failed: ${stderr || (err as Error).message}`, { cause: err });
  }
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
