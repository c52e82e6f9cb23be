import { PNG } from 'pngjs';
import type { Page } from 'playwright-core';
import { Screenshot, until, type Box, type Rgb } from './display.js';

/*
 * A session shown in a browser tab by xpra's HTML5 client: what the tests look for is the
 * remote page's colours in the tab's pixels (JPEG-smeared, so with a tolerance and a count).
 */

export const TOLERANCE = 48;

/**
 * Polls the tab's screenshots until `colour` covers at least `minCount` pixels (inside `within`
 * when given); saves the one that showed it (or the last, as FAILED-…, when it never did) at
 * `save(name)`. The box bounds every matching pixel: JPEG fringes elsewhere widen it, so look
 * for a colour only where it can be.
 */
export async function colourIn(tab: Page, colour: Rgb, minCount: number, what: string, save: (name: string) => string, ms = 90_000, within?: Omit<Box, 'count'>): Promise<Box> {
  let last: Buffer | undefined;
  const name = what.replace(/[^a-z0-9]+/gi, '-');
  try {
    const { buf, box } = await until(async () => {
      const b = await tab.screenshot();
      last = b;
      const found = new Screenshot(PNG.sync.read(b)).find(colour, { tolerance: TOLERANCE, minCount, ...(within ? { within } : {}) });
      return found ? { buf: b, box: found } : undefined;
    }, ms, `${what} did not show in the tab`);
    new Screenshot(PNG.sync.read(buf)).save(save(name));
    return box;
  } catch (err) {
    if (last) new Screenshot(PNG.sync.read(last)).save(save(`FAILED-${name}`));
    throw err;
  }
}

export function centre(b: Box): { x: number; y: number } {
  return { x: Math.round(b.x + b.width / 2), y: Math.round(b.y + b.height / 2) };
}

/** The browser's own clipboard, as the tab's page reads it (needs the clipboard-read permission). */
export async function localClipboard(tab: Page): Promise<string> {
  return (await tab.evaluate('navigator.clipboard.readText()')) as string;
}

/** What xpra's HTML5 client holds as the clipboard it last sent or received (Client.js clipboard_buffer). */
export async function clientClipboard(tab: Page): Promise<string> {
  return (await tab.evaluate('window.client ? window.client.clipboard_buffer : ""')) as string;
}

/** The hello xpra's HTML5 client sent (its capabilities) and the encodings it offered. */
export async function clientSettings(tab: Page): Promise<{ encodings: string[]; caps: Record<string, unknown> }> {
  return (await tab.evaluate(`({ encodings: window.client._get_encodings(), caps: Object.fromEntries(Object.entries(window.client.capabilities).filter(([k]) => k === 'encoding' || k.startsWith('encoding.') || k === 'auto_refresh_delay' || k === 'clipboard')) })`)) as {
    encodings: string[];
    caps: Record<string, unknown>;
  };
}
