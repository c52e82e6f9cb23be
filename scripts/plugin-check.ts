/*
 * `npm run plugin:check -- <path or package>`: runs the plugin contract suite
 * (core/plugin/check.ts) on one plugin, the way the server would load it. One line per
 * check; exit 0 when every check passes, 1 when one fails, 2 on a usage error.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkPlugin } from '../core/plugin/check.js';
import { PLUGIN_CONTRACT_VERSION } from '../core/plugin/contract.js';

const HELP = `Usage: npm run plugin:check -- <plugin> [options]

Runs the HackStream plugin contract suite on one plugin: loads it through the real loader
(contract version, shape, options, dependencies), checks its options schema, applies its
SQL migrations on a real PostgreSQL (twice: a restart must apply none again), runs init and
close, and checks that nothing stays open.

<plugin> is what you would write as a key under "plugins" in the config:
  ./my-plugin, ../x, /abs/path    a folder (package.json exports/main, or index.ts/index.js) or a file
  @acme/hs-ldap, hs-foo           an npm package, from the server's node_modules or --plugins-dir
  auth-local                      a built-in

Options:
  --database-url <url>   PostgreSQL to use (a throwaway schema, dropped afterwards); default
                         HACKSTREAM_DATABASE_URL, else an embedded PostgreSQL in a temporary folder
  --plugins-dir <dir>    where package names are also looked up (default ./plugins)
  -h, --help             this text

Exit status: 0 every check passed, 1 a check failed, 2 usage error.
`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { 'database-url': { type: 'string' }, 'plugins-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`plugin:check: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [key, ...extra] = parsed.positionals;
  if (!key || extra.length > 0) {
    process.stderr.write(`plugin:check: give exactly one plugin (a path or a package name)\n\n${HELP}`);
    return 2;
  }
  const databaseUrl = parsed.values['database-url'] ?? (process.env.HACKSTREAM_DATABASE_URL || undefined);
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    process.stderr.write('plugin:check: --database-url must be a postgres:// or postgresql:// URL\n');
    return 2;
  }
  const baseDir = process.cwd();
  const pluginsDir = resolve(baseDir, parsed.values['plugins-dir'] ?? 'plugins');
  process.stdout.write(`Checking ${key} against plugin contract ${PLUGIN_CONTRACT_VERSION}\n`);
  const lines = await checkPlugin(key, { load: { baseDir, pluginsDir }, ...(databaseUrl ? { databaseUrl } : {}) });
  for (const line of lines) process.stdout.write(`${line.ok ? 'ok  ' : 'FAIL'}  ${line.check}${line.detail ? ` — ${line.detail}` : ''}\n`);
  const failed = lines.filter((l) => !l.ok).length;
  process.stdout.write(failed === 0 ? `\nAll ${lines.length} checks passed.\n` : `\n${failed} of ${lines.length} checks failed.\n`);
  return failed === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`plugin:check: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
