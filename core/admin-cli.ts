import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import { createControlPlane } from './auth/index.js';
import { Users, usernameSchema } from './auth/users.js';
import { ConfigError, configDir, loadConfig, pluginsDirOf } from './config/load.js';
import { isAppError } from './errors.js';
import { createLogger } from '../lib/log.js';
import { startPluginHost, type PluginHost } from './plugin/host.js';
import { loadPlugins } from './plugin/loader.js';
import { pluginStorageProvider } from './plugin/storage.js';
import { openDatabase } from './store/database.js';
import { openKv, type KeyValueStore } from './store/kv.js';
import { ROLES, type Role } from './store/entities.js';

const HELP = `Usage: npm run admin -- <command> [options]

Manages local accounts from the server's shell, with the server's configuration
(HACKSTREAM_CONFIG, HACKSTREAM_DATA_DIR, HACKSTREAM_DATABASE_URL…). Every change is audited
(actor "cli:<os user>") and reaches the enabled plugins' audit sinks (the plugins are started
for the command); a new password, disable and a role change end the user's tokens, and
the running server ends their live sessions at once (it is told through the store; if
that message is lost, at its next reconciliation, every sessions.reconcileIntervalSeconds).

Commands:
  create <username> [--role user|admin] [--password-stdin]
  reset-password <username> [--password-stdin]
  disable <username>
  enable <username>
  list

Without --password-stdin a password is generated and printed once. With it, the first line
of standard input is the password (never pass one as an argument: others can read those).

With the embedded database (no HACKSTREAM_DATABASE_URL) it uses the server's database
while the server runs (or starts it for the command); run it as root or as the server's user.
`;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readLine(): Promise<string>;
}

type Parsed = { command: string; username?: string; role: Role; passwordStdin: boolean };

function parseArgs(argv: string[]): Parsed | string {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h') return 'help';
  let role: Role = 'user';
  let passwordStdin = false;
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a === '--password-stdin') passwordStdin = true;
    else if (a === '--role') {
      const r = rest[++i];
      if (!r || !(ROLES as readonly string[]).includes(r)) return `--role must be one of ${ROLES.join(', ')}`;
      role = r as Role;
    } else if (a.startsWith('-')) return `unknown option ${a}`;
    else positional.push(a);
  }
  const needsUser = ['create', 'reset-password', 'disable', 'enable'].includes(command);
  if (!needsUser && command !== 'list') return `unknown command "${command}"`;
  if (needsUser && positional.length !== 1) return `${command} takes exactly one username`;
  if (!needsUser && positional.length > 0) return `${command} takes no arguments`;
  return { command, role, passwordStdin, ...(positional[0] !== undefined ? { username: positional[0] } : {}) };
}

/** Runs one command; returns the exit code. */
export async function runAdminCli(argv: string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = parseArgs(argv);
  if (args === 'help') {
    io.out(HELP);
    return 0;
  }
  if (typeof args === 'string') {
    io.err(`admin: ${args}\n\n${HELP}`);
    return 64; // EX_USAGE
  }
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return 78;
    }
    throw err;
  }
  const logger = createLogger({ level: env.HACKSTREAM_LOG_LEVEL === 'debug' ? 'debug' : 'warn', destination: process.stderr });
  let loaded;
  try {
    // The server's plugins, validated as the server would: their audit sinks see this command's changes.
    loaded = await loadPlugins(config.plugins, { baseDir: configDir(config), pluginsDir: pluginsDirOf(config) });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return 78;
    }
    io.err(`admin: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  let db;
  try {
    db = await openDatabase({ dataDir: config.dataDir, logger, ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}) });
  } catch (err) {
    // No PostgreSQL binaries, an unreachable data dir or database: the message says which.
    io.err(`admin: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  let kv: KeyValueStore | undefined;
  let plugins: PluginHost | undefined;
  try {
    kv = await openKv({ redisPrefix: config.redisPrefix, logger, ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}) });
    const host = () => {
      if (!plugins) throw new Error('the plugin host is not started yet');
      return plugins;
    };
    const control = createControlPlane({ dataSource: db.dataSource, kv, logger, plugins: host, settings: { hashConcurrency: 1, hashQueueMax: 1 } });
    const storage = pluginStorageProvider({ dataSource: db.dataSource, kv, logger, dataDir: config.dataDir });
    plugins = await startPluginHost(loaded, { logger, services: control.services, storage });
    const actor = { id: `cli:${safeOsUser()}`, ip: null };
    return await run(args, control.users, actor, io);
  } catch (err) {
    io.err(`admin: ${isAppError(err) ? err.message : err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    // Closing the host first drains the audit sinks (bounded), so they get this command's rows.
    await plugins?.close();
    await kv?.close();
    await db.close();
  }
}

async function run(args: Parsed, users: Users, actor: { id: string; ip: null }, io: CliIo): Promise<number> {
  if (args.command === 'list') {
    for (let cursor: string | undefined, page; (page = await users.list({ limit: 200, cursor })); cursor = page.nextCursor) {
      for (const u of page.items) io.out(`${u.id}  ${u.role.padEnd(5)}  ${u.disabled ? 'disabled' : 'enabled '}  ${u.username}\n`);
      if (!page.nextCursor) break;
    }
    return 0;
  }
  const username = args.username as string;
  if (args.command === 'create') {
    if (!usernameSchema.safeParse(username).success) throw new Error(`"${username}" is not a valid username (letters, digits, ".", "_", "@", "-")`);
    const { password, generated } = await newPassword(args, io);
    const user = await users.create({ username, password, role: args.role }, actor);
    io.out(`created ${user.role} ${user.username} (${user.id})\n`);
    if (generated) io.out(`password (shown once): ${password}\n`);
    return 0;
  }
  const user = await users.findByUsername(username);
  if (!user) throw new Error(`no user "${username}"`);
  if (args.command === 'reset-password') {
    const { password, generated } = await newPassword(args, io);
    await users.update(user.id, { password }, actor);
    io.out(`password of ${user.username} reset; their tokens are revoked\n`);
    if (generated) io.out(`new password (shown once): ${password}\n`);
    return 0;
  }
  await users.update(user.id, { disabled: args.command === 'disable' }, actor);
  io.out(`${user.username} ${args.command === 'disable' ? 'disabled; their tokens are revoked' : 'enabled'}\n`);
  return 0;
}

async function newPassword(args: Parsed, io: CliIo): Promise<{ password: string; generated: boolean }> {
  if (!args.passwordStdin) return { password: randomBytes(18).toString('base64url'), generated: true };
  return { password: await io.readLine(), generated: false };
}

function safeOsUser(): string {
  try {
    return userInfo().username.slice(0, 64) || 'unknown';
  } catch {
    return 'unknown';
  }
}

function stdinLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, terminal: false });
    let done = false;
    rl.once('line', (line) => {
      done = true;
      rl.close();
      resolve(line);
    });
    rl.once('close', () => {
      if (!done) reject(new Error('--password-stdin: no line on standard input'));
    });
  });
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  runAdminCli(process.argv.slice(2), {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    readLine: stdinLine,
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`admin: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
