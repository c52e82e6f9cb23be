/*
 * What every HackStream child process does the same way (server/*-main.ts): read the config
 * (exit 78 when it is wrong), tell the supervisor it serves (IPC `{type: 'ready'}`), drain on
 * SIGTERM/SIGINT, and report a death by unhandled error before exiting 1. Imports nothing
 * heavy: the edge uses it too.
 */
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig } from '../core/config/load.js';
import type { Config } from '../core/config/schema.js';
import { createLogger, type Logger } from '../lib/log.js';

export interface ChildProcessSpec<T> {
  /** The process's name in logs ("control", "edge"). */
  name: string;
  start(config: Readonly<Config>, logger: Logger, runDir: string): Promise<T>;
  stop(running: T): Promise<void>;
  /** Called with the error that kills the process; resolves when it has been reported. */
  crashed(running: T | undefined, err: unknown, logger: Logger): Promise<void>;
}

/** Runs one child process to the contract docs/processes.md describes. */
export function runChild<T>(spec: ChildProcessSpec<T>): void {
  let config: Readonly<Config>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
  const logger = createLogger({ level: config.log.level }).child({ process: spec.name });
  const runDir = process.env.HACKSTREAM_RUN_DIR ? resolve(process.env.HACKSTREAM_RUN_DIR) : join(resolve(config.dataDir), 'run');
  let running: T | undefined;
  let dying = false;
  const die = (err: unknown) => {
    if (dying) return;
    dying = true;
    logger.fatal({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unhandled error; exiting');
    spec.crashed(running, err, logger).finally(() => process.exit(1));
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    const done = running ? spec.stop(running) : Promise.resolve();
    done.then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The supervisor is gone (even SIGKILLed): nobody would restart or stop us, so drain and go.
  process.on('disconnect', () => stop('supervisor gone'));
  spec.start(config, logger, runDir).then(
    (r) => {
      running = r;
      if (stopping) return void spec.stop(r).finally(() => process.exit(0));
      logger.info({ pid: process.pid }, `${spec.name} ready`);
      process.send?.({ type: 'ready' });
    },
    (err: unknown) => {
      // A configuration problem only found here (a plugin's options): EX_CONFIG, like the supervisor's own.
      if (err instanceof ConfigError || (err instanceof Error && err.name === 'BootstrapError')) {
        process.stderr.write(`${err.message}\n`);
        process.exit(78);
      }
      logger.fatal({ err: (err as Error).message }, `${spec.name} could not start`);
      process.stderr.write(`hackstream ${spec.name}: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}

/** Races a promise against a deadline (for reports from a dying process). */
export function within(ms: number, p: Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    p.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
