import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

/** The front-end sources esbuild bundles (web/src). */
const SRC = join(import.meta.dirname, '../../web/src');
/**
 * Bundles made ahead by the server release (scripts/package-server.sh writes
 * dist/web/prebuilt/<entry>.js): a production install has no esbuild. A checkout has none.
 */
const PREBUILT = join(import.meta.dirname, '../../web/prebuilt');

async function readPrebuilt(entry: string): Promise<string | undefined> {
  try {
    return await readFile(join(PREBUILT, `${entry}.js`), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface Bundle {
  js: string;
  /** gzip -9 size of `js`, for the budget (docs/web.md). */
  gzipBytes: number;
}

const built = new Map<string, Promise<Bundle>>();

/**
 * Bundles an entry of web/src with esbuild, once per process, in memory (no CDN, no
 * build step to forget), or reads the release's prebuilt bundle. esbuild is loaded only
 * when the first page is asked for and there is no prebuilt one.
 */
export type BundleEntry = 'portal' | 'xpra-open' | 'admin';

export const BUNDLE_ENTRIES: readonly BundleEntry[] = ['portal', 'xpra-open', 'admin'];

export function bundle(entry: BundleEntry): Promise<Bundle> {
  let b = built.get(entry);
  if (!b) {
    b = (async () => {
      const prebuilt = await readPrebuilt(entry);
      if (prebuilt !== undefined) return { js: prebuilt, gzipBytes: gzipSync(prebuilt, { level: 9 }).length };
      const esbuild = await import('esbuild');
      const out = await esbuild.build({
        entryPoints: [join(SRC, `${entry}.ts`)],
        bundle: true,
        minify: true,
        format: entry === 'xpra-open' ? 'iife' : 'esm',
        target: ['es2020'],
        write: false,
        legalComments: 'none',
        logLevel: 'silent',
      });
      const js = out.outputFiles[0]?.text ?? '';
      return { js, gzipBytes: gzipSync(js, { level: 9 }).length };
    })();
    b.catch(() => built.delete(entry));
    built.set(entry, b);
  }
  return b;
}
