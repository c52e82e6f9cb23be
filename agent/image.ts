/*
 * The session image (images/firefox-xpra): its content-addressed tag and building it on
 * demand with scripts/build-image.sh, which computes the same tag.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import type { Logger } from '../lib/log.js';

export const IMAGE_REPOSITORY = 'hackstream/firefox-xpra';

/** The first folder at or above `start` holding HackStream's package.json. */
function findRepoRoot(start: string): string {
  let firstWithPackage: string | undefined;
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      firstWithPackage ??= dir;
      const { name } = JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown };
      if (name === 'hackstream') return dir;
    }
    if (dirname(dir) === dir) break;
  }
  if (firstWithPackage) return firstWithPackage;
  throw new Error(`no package.json above ${start}`);
}

/** Works from the sources (core/sessions/) and from the build output (dist/core/sessions/). */
export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
export const IMAGE_DIR = join(REPO_ROOT, 'images', 'firefox-xpra');
const BUILD_SCRIPT = join(REPO_ROOT, 'scripts', 'build-image.sh');

/** Regular files under `dir` (symlinks skipped, like `find -type f`), relative, '/'-separated. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * `hackstream/firefox-xpra:<12 hex>`: SHA-256 over `<sha256>  <path>\n` per file, sorted by
 * path bytewise (C locale), which is `sha256sum` output; scripts/build-image.sh computes the
 * same, so both name the same image. (Paths must not contain `\` or newlines, which
 * sha256sum escapes.)
 */
export function imageTag(dir: string = IMAGE_DIR): string {
  const files = listFiles(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const listing = files.map((rel) => `${sha256(readFileSync(join(dir, rel)))}  ${rel}\n`).join('');
  return `${IMAGE_REPOSITORY}:${sha256(listing).slice(0, 12)}`;
}

/** The session image is missing or could not be built. */
export class ImageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ImageError';
  }
}

export interface EnsureImageOptions {
  logger: Logger;
  /** Receives the build's output lines (only when a build runs). */
  progress?: (line: string) => void;
  /** A configured image to use as it is: it must exist; nothing is built. */
  image?: string;
  /** Stops waiting; a build that nobody waits for any more is cancelled. */
  signal?: AbortSignal;
}

async function imageExists(docker: Docker, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: unknown }).statusCode === 404) return false;
    throw err;
  }
}

/** One build at a time per process; every caller waiting on it gets the output lines. */
interface Build {
  done: Promise<string>;
  listeners: Set<(line: string) => void>;
  waiters: number;
  cancel: () => void;
}
let current: Build | null = null;

const TAIL_LINES = 20;

function runBuildScript(tag: string, logger: Logger, listeners: Set<(line: string) => void>): { done: Promise<string>; cancel: () => void } {
  const log = logger.child({ image: tag });
  log.info({ script: BUILD_SCRIPT }, 'building the session image');
  const t0 = Date.now();
  const tail: string[] = [];
  // Its own process group, so that cancelling stops the docker client too (the engine then
  // cancels the build when its client goes away).
  const child = spawn('bash', [BUILD_SCRIPT], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let exited = false;
  const cancel = () => {
    if (exited || child.pid === undefined) return;
    log.info({}, 'image build cancelled: nothing waits for it any more');
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  const done = new Promise<string>((resolve, reject) => {
    const onLine = (stream: 'stdout' | 'stderr') => (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      log.info({ stream, line }, 'image build');
      for (const listener of listeners) {
        try {
          listener(line);
        } catch (err) {
          log.warn({ err }, 'image build progress listener threw');
        }
      }
    };
    const closed = [child.stdout, child.stderr].map(
      (stream, i) =>
        new Promise<void>((done) => {
          const rl = createInterface({ input: stream, crlfDelay: Infinity });
          rl.on('line', onLine(i === 0 ? 'stdout' : 'stderr'));
          rl.on('close', done);
        }),
    );
    child.on('error', (err) => reject(new ImageError(`cannot run ${BUILD_SCRIPT}: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => {
      exited = true;
      void Promise.all(closed).then(() => {
        if (code === 0) {
          log.info({ ms: Date.now() - t0 }, 'session image built');
          resolve(tag);
        } else {
          const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
          reject(new ImageError(`building the session image failed (${BUILD_SCRIPT} ${how}):\n${tail.join('\n')}`));
        }
      });
    });
  });
  return { done, cancel };
}

/**
 * The image reference to run sessions from. `opts.image` when given (it must exist); else
 * imageTag(), built with scripts/build-image.sh when missing (minutes, once). Concurrent
 * calls share one build; when every caller's `signal` has aborted, the build is cancelled.
 */
export async function ensureImage(docker: Docker, opts: EnsureImageOptions): Promise<string> {
  if (opts.image) {
    if (!(await imageExists(docker, opts.image))) {
      throw new ImageError(`the configured session image ${opts.image} does not exist: build it (npm run image) or pull it`);
    }
    return opts.image;
  }
  const tag = imageTag();
  if (await imageExists(docker, tag)) return tag;
  opts.signal?.throwIfAborted();
  if (!current) {
    const listeners = new Set<(line: string) => void>();
    const run = runBuildScript(tag, opts.logger, listeners);
    const started: Build = {
      listeners,
      waiters: 0,
      cancel: run.cancel,
      done: run.done
        .then(async (built) => {
          // The folder may have changed while the script ran; it hashes what it builds.
          if (!(await imageExists(docker, built))) {
            throw new ImageError(`the image build finished but ${built} does not exist (did ${IMAGE_DIR} change meanwhile?)`);
          }
          return built;
        })
        .finally(() => {
          current = null;
        }),
    };
    // A build every waiter gave up on is cancelled and rejects with no one to tell.
    started.done.catch(() => undefined);
    current = started;
  }
  const build = current;
  if (opts.progress) build.listeners.add(opts.progress);
  build.waiters += 1;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    const signal = opts.signal;
    if (!signal) return;
    onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new ImageError('stopped waiting for the image build'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([build.done, aborted]);
  } finally {
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    if (opts.progress) build.listeners.delete(opts.progress);
    build.waiters -= 1;
    if (build.waiters === 0 && opts.signal?.aborted) build.cancel();
  }
}
