import { describeError } from '../core/api/errors.js';
import { createApp } from './app.js';
import { BootstrapError } from '../core/auth/index.js';
import { ConfigError, loadConfig } from '../core/config/load.js';
import { createLogger } from '../lib/log.js';
import { PluginError } from '../core/plugin/errors.js';

const HELP = `Usage: npm start [-- --help]

Runs HackStream: one TLS port for the API and every session.
Configuration: a JSON file named by HACKSTREAM_CONFIG (see docs/configuration.md),
overridden by HACKSTREAM_LISTEN (default 0.0.0.0:443), HACKSTREAM_PUBLIC_HOST (localhost),
HACKSTREAM_SESSION_DOMAIN (sessions.localhost), HACKSTREAM_DATA_DIR (.),
HACKSTREAM_REDIS_URL, HACKSTREAM_LOG_LEVEL, HACKSTREAM_TLS_MODE, HACKSTREAM_TLS_CERT_FILE,
HACKSTREAM_TLS_KEY_FILE, HACKSTREAM_DATABASE_URL.

On the first start with an empty database an administrator is created from
HACKSTREAM_ADMIN_USER (default "admin") and HACKSTREAM_ADMIN_PASSWORD; without a password
one is generated and printed once to stderr. Manage accounts from the shell with
npm run admin -- --help.
`;

async function main(): Promise<number> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 78; // EX_CONFIG
    }
    throw err;
  }
  const logger = createLogger({ level: config.log.level });
  let app;
  try {
    app = await createApp(config, {
      logger,
      bootstrap: {
        username: process.env.HACKSTREAM_ADMIN_USER || undefined,
        password: process.env.HACKSTREAM_ADMIN_PASSWORD || undefined,
        // Jupyter-style: the generated password is shown once on the terminal, not in the JSON log.
        announce: (text) => process.stderr.write(text),
      },
    });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof BootstrapError) {
      process.stderr.write(`${err.message}\n`);
      return 78;
    }
    if (err instanceof PluginError) {
      logger.fatal({ plugin: err.plugin, err: err.message, cause: err.cause }, 'a plugin stopped start-up');
      process.stderr.write(`hackstream: plugin ${err.plugin}: ${err.message}\n`);
      return 1;
    }
    logger.fatal({ error: describeError(err) }, 'start-up failed');
    process.stderr.write(`hackstream: start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  try {
    const addr = await app.listen();
    logger.info({ address: addr.address, port: addr.port, publicHost: config.publicHost }, 'hackstream listening');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const { host, port } = config.listen;
    if (code === 'EACCES') logger.fatal({ host, port }, 'permission denied binding the port: run as root, grant CAP_NET_BIND_SERVICE, or set HACKSTREAM_LISTEN=0.0.0.0:8443');
    else if (code === 'EADDRINUSE') logger.fatal({ host, port }, 'the port is already in use: stop the other server or set HACKSTREAM_LISTEN');
    else logger.fatal({ err }, 'cannot listen');
    await app.close();
    return 1;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`hackstream: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
