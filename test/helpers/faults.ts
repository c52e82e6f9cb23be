import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A FAKE fault, for a crash no request can cause: a preload (`node --import <file>`) that
 * throws `message` as an uncaught exception once the process told its supervisor it is ready.
 * Written into `dir`; returns the file.
 */
export function crashAfterReadyPreload(dir: string, message: string): string {
  const file = join(dir, 'crash-after-ready.mjs');
  writeFileSync(
    file,
    `const send = process.send.bind(process);
process.send = (m, ...rest) => {
  const r = send(m, ...rest);
  if (m && m.type === 'ready') setImmediate(() => { throw new Error(${JSON.stringify(message)}); });
  return r;
};
`,
  );
  return file;
}
