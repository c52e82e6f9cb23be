import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

/** The front-end sources esbuild bundles (web/src). */
const SRC = join(import.meta.dirname, '../../web/src');

export interface Bundle {
  js: string;
  /** gzip -9 size of `js`, for the budget (docs/web.md). */
  gzipBytes: number;
}

const built = new Map<string, Promise<Bundle>>();

/**
 * Bundles an entry of web/src with esbuild, once per process, in memory (no CDN, no
 * build step to forget). esbuild is loaded only when the first page is asked for.
 */
export function bundle(entry: 'portal' | 'xpra-open' | 'admin'): Promise<Bundle> {
  let b = built.get(entry);
  if (!b) {
    b = (async () => {
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
