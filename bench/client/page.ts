/*
 * The test pages, served by the bench itself to the session's Firefox.
 *   /visible — a full-width block of MARK on a white page: "the page is on the client display"
 *              is this colour showing up in a screenshot of the client's X display.
 *   /long    — the same block on top, then many screens of coloured stripes with text, to scroll.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Rgb } from '../../test/helpers/display.js';

/** Distinctive: no part of Firefox's or xpra's chrome is this colour. */
export const MARK: Rgb = { r: 214, g: 22, b: 160 };
/** Height of the block, CSS pixels. */
export const MARK_HEIGHT = 320;
/** Stripes on the long page (110 px each): ~4,000 px/s of scrolling for a minute fits. */
const STRIPES = 2400;

const css = (c: Rgb) => `rgb(${c.r},${c.g},${c.b})`;
const block = `<div style="height:${MARK_HEIGHT}px;width:100%;background:${css(MARK)}"></div>`;
const head = (title: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>` +
  '<style>html,body{margin:0;padding:0;background:#fff;font:16px/1.4 sans-serif}' +
  '.s{height:94px;padding:8px 24px;overflow:hidden}</style></head><body>';

const WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(' ');

function stripe(i: number): string {
  // Varied hues and text, so every scrolled screen differs from the last (no cheap repeats).
  const hue = (i * 47) % 360;
  const words = Array.from({ length: 40 }, (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length]).join(' ');
  return `<div class="s" style="background:hsl(${hue},55%,${70 + (i % 3) * 8}%)"><b>Stripe ${i}</b> ${words}</div>`;
}

export const PAGES: Record<string, string> = {
  '/visible': `${head('visible')}${block}<p style="padding:16px">HackStream client bench</p></body></html>`,
  '/long': `${head('long')}${block}${Array.from({ length: STRIPES }, (_, i) => stripe(i)).join('')}</body></html>`,
};

export interface PageServer {
  url(path: keyof typeof PAGES | string): string;
  close(): Promise<void>;
}

/** Serves PAGES on host (an address the session containers may reach). */
export async function servePages(host: string): Promise<PageServer> {
  const server = http.createServer((req, res) => {
    const body = PAGES[(req.url ?? '/').split('?')[0] ?? '/'];
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://${host}:${port}${path}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
