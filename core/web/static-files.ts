import { readFile, realpath } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';

/** Debian's xpra package puts the HTML5 client here (`dpkg -L xpra | grep www`). */
export const DEFAULT_XPRA_WWW = '/usr/share/xpra/www';

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.svg': 'image/svg+xml',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.map': 'application/json',
};

/**
 * Debian links some of the client's libraries to its shared copies (js/lib/jquery.js →
 * /usr/share/javascript/jquery/jquery.js, package libjs-jquery): those are followed too.
 */
const SHARED_JS = '/usr/share/javascript/';

/** Only the client's assets; never its index.html or connect.html (inline scripts, password in the URL). */
const ALLOWED = /^(?:js|css|icons)\/[A-Za-z0-9_][A-Za-z0-9_./-]{0,200}$|^favicon\.(?:png|ico)$/;

export interface StaticFile {
  body: Buffer;
  type: string;
}

/** A file of xpra's www folder, or undefined (not allowed, missing, or outside the folder). */
export async function xpraAsset(root: string, rel: string): Promise<StaticFile | undefined> {
  if (!ALLOWED.test(rel) || rel.split('/').includes('..')) return undefined;
  const type = TYPES[extname(rel)];
  if (!type) return undefined;
  try {
    const base = await realpath(root);
    const file = await realpath(join(base, rel));
    if (!file.startsWith(base + sep) && !file.startsWith(SHARED_JS)) return undefined;
    return { body: await readFile(file), type };
  } catch {
    return undefined;
  }
}
