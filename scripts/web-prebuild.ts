/*
 * The portal's front-end bundles, made ahead for the server release
 * (scripts/package-server.sh): `node --import tsx scripts/web-prebuild.ts <outDir>` writes
 * <outDir>/portal.js and xpra-open.js with the very options the server would bundle them
 * with at run time (core/web/bundle.ts), so an install needs no esbuild.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_ENTRIES, bundle } from '../core/web/bundle.js';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node --import tsx scripts/web-prebuild.ts <outDir>\n');
  process.exit(2);
}
mkdirSync(out, { recursive: true });
for (const entry of BUNDLE_ENTRIES) {
  const { js, gzipBytes } = await bundle(entry);
  writeFileSync(join(out, `${entry}.js`), js, { mode: 0o644 });
  process.stderr.write(`[hackstream] ${entry}.js: ${js.length} bytes (${gzipBytes} gzipped)\n`);
}
