import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';

const run = promisify(execFile);
/** xpra, xdotool and ImageMagick are Debian's: keep pyenv's python3 out of their way. */
export const X_PATH = `/usr/bin:/bin:${process.env.PATH ?? ''}`;

export interface Display {
  /** ":N" */
  name: string;
  width: number;
  height: number;
  close(): void;
}

/**
 * An X server of our own (Xvfb) on a display number Xvfb picks itself (`-displayfd`: no race with
 * another test starting one at the same moment); -noreset: it would refuse clients while
 * resetting after its last one left.
 */
export async function startXvfb(width = 1280, height = 800): Promise<Display> {
  const xvfb: ChildProcess = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp', '-noreset'], {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  const fd = xvfb.stdio[3] as NodeJS.ReadableStream;
  const n = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(new Error('Xvfb did not start within 10 s')), 10_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      xvfb.kill('SIGKILL');
      reject(err);
    };
    fd.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /^(\d+)\n/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    xvfb.once('exit', (code) => fail(new Error(`Xvfb exited (${code}) before it chose a display`)));
    xvfb.once('error', fail);
  });
  const name = `:${n}`;
  return { name, width, height, close: () => void xvfb.kill('SIGTERM') };
}

export interface Rgb {
  r: number;
  g: number;
  b: number;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Pixels inside the box that matched. */
  count: number;
}

/** A screenshot of the whole display, as RGBA pixels. */
export class Screenshot {
  constructor(readonly png: PNG) {}

  get width(): number {
    return this.png.width;
  }

  get height(): number {
    return this.png.height;
  }

  pixel(x: number, y: number): Rgb {
    const i = (y * this.png.width + x) * 4;
    const d = this.png.data;
    return { r: d[i] ?? 0, g: d[i + 1] ?? 0, b: d[i + 2] ?? 0 };
  }

  /**
   * The bounding box of the pixels within `tolerance` (per channel) of `colour`, or undefined
   * when fewer than `minCount` match. Lossy encodings shift colours a little; a distinctive
   * colour with a tolerance of ~24 survives them.
   */
  find(colour: Rgb, o: { tolerance?: number; minCount?: number; within?: Omit<Box, 'count'> } = {}): Box | undefined {
    const tol = o.tolerance ?? 24;
    const area = o.within ?? { x: 0, y: 0, width: this.width, height: this.height };
    let minX = Infinity, minY = Infinity, maxX = -1, maxY = -1, count = 0;
    for (let y = area.y; y < Math.min(area.y + area.height, this.height); y++) {
      for (let x = area.x; x < Math.min(area.x + area.width, this.width); x++) {
        const p = this.pixel(x, y);
        if (Math.abs(p.r - colour.r) > tol || Math.abs(p.g - colour.g) > tol || Math.abs(p.b - colour.b) > tol) continue;
        count++;
        if (x < minX) minX = x;
        if (y < minY) minY = y;
        if (x > maxX) maxX = x;
        if (y > maxY) maxY = y;
      }
    }
    if (count < (o.minCount ?? 1)) return undefined;
    return { x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1, count };
  }

  save(file: string): void {
    writeFileSync(file, PNG.sync.write(this.png));
  }
}

/** Grabs the root window with ImageMagick's `import` (the real X server's pixels). */
export async function screenshot(display: Display | string): Promise<Screenshot> {
  const name = typeof display === 'string' ? display : display.name;
  const { stdout } = await run('import', ['-display', name, '-window', 'root', 'png:-'], {
    encoding: 'buffer',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, PATH: X_PATH },
  });
  return new Screenshot(PNG.sync.read(stdout));
}

/** Runs xdotool on the display; resolves with its stdout (trimmed), or '' when it found nothing. */
export async function xdotool(display: Display | string, args: string[]): Promise<string> {
  const name = typeof display === 'string' ? display : display.name;
  try {
    const { stdout } = await run('xdotool', args, { env: { ...process.env, PATH: X_PATH, DISPLAY: name } });
    return stdout.trim();
  } catch (err) {
    // `xdotool search` exits 1 when no window matches.
    if (args[0] === 'search' && (err as { code?: number }).code === 1) return '';
    throw err;
  }
}

/** Polls `check` every 250 ms until it returns a value, or fails after `ms` naming `what`. */
export async function until<T>(check: () => Promise<T | undefined>, ms: number, what: string, seen?: () => Promise<unknown>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) {
      // What was there instead, so that a failure in CI says more than "did not happen".
      const last = seen ? ` (last seen: ${JSON.stringify(await seen().catch((err: unknown) => String(err)))})` : '';
      throw new Error(`${what} within ${ms} ms${last}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A window's position and size on the root window (`xdotool getwindowgeometry`). */
export async function windowGeometry(display: Display | string, id: string): Promise<Omit<Box, 'count'>> {
  const out = await xdotool(display, ['getwindowgeometry', '--shell', id]);
  const v = (k: string) => Number(new RegExp(`^${k}=(-?\\d+)$`, 'm').exec(out)?.[1] ?? NaN);
  const box = { x: v('X'), y: v('Y'), width: v('WIDTH'), height: v('HEIGHT') };
  if (Object.values(box).some(Number.isNaN)) throw new Error(`xdotool getwindowgeometry ${id}: ${out}`);
  return box;
}
