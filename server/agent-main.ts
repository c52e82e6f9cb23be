/*
 * The agent process's entry (the supervisor runs it; the only process that runs as root).
 * Socket: <HACKSTREAM_RUN_DIR>/agent/agent.sock, reachable by HACKSTREAM_CONTROL_UID only
 * (the directory and socket are group-owned by that uid's group; the peer uid is checked on
 * every connection anyway). Audit rows go to the store without migrating it.
 */
import { chownSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../core/config/load.js';
import type { Config } from '../core/config/schema.js';
import { openDatabase, type Database } from '../core/store/database.js';
import { createLogger, type Logger } from '../lib/log.js';
import type { AgentAudit } from '../agent/audit.js';
import { buildAgent, databaseAudit } from './agent.js';
import { startTracing } from '../lib/tracing-sdk.js';

const CRASH_AUDIT_MS = 2_000;
const STORE_RETRY_MS = 5_000;

function controlUid(): number {
  const raw = process.env.HACKSTREAM_CONTROL_UID;
  if (raw === undefined || raw === '') return process.getuid?.() ?? 0;
  if (!/^\d{1,10}$/.test(raw)) throw new Error(`HACKSTREAM_CONTROL_UID ${JSON.stringify(raw)} is not a uid (a whole number)`);
  return Number(raw);
}

/** The primary gid of `uid` from /etc/passwd, or null (then only the owner reaches the socket). */
function primaryGid(uid: number): number | null {
  const text = (() => {
    try {
      return readFileSync('/etc/passwd', 'utf8');
    } catch {
      return '';
    }
  })();
  const entry = text.split('\n').find((l) => l.split(':')[2] === String(uid));
  const gid = Number(entry?.split(':')[3]);
  return Number.isInteger(gid) ? gid : null;
}

/** The store for audit rows, opened in the background and retried: the agent runs without it. */
class StoreAudit implements AgentAudit {
  db: Database | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly config: Readonly<Config>,
    private readonly log: Logger,
  ) {}

  open(): void {
    // The agent only appends audit rows: control migrates. Without a databaseUrl this joins
    // the embedded server the supervisor started.
    openDatabase({
      dataDir: resolve(this.config.dataDir),
      logger: this.log,
      migrate: false,
      poolSize: 2,
      ...(this.config.databaseUrl ? { databaseUrl: this.config.databaseUrl } : {}),
    }).then(
      (db) => {
        if (this.closed) return void db.close().catch(() => undefined);
        this.db = db;
      },
      (err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'agent audit store unavailable; retrying');
        if (!this.closed) this.timer = setTimeout(() => this.open(), STORE_RETRY_MS);
      },
    );
  }

  async record(entry: Parameters<AgentAudit['record']>[0]): Promise<void> {
    if (!this.db) throw new Error('the audit store is not open yet');
    await databaseAudit(this.db).record(entry);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.db?.close();
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.log.level }).child({ process: 'agent' });
  const runDir = resolve(process.env.HACKSTREAM_RUN_DIR ?? join(config.dataDir, 'run'));
  const dir = join(runDir, 'agent');
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const uid = controlUid();
  const gid = uid === 0 ? null : primaryGid(uid);
  if (gid !== null && process.getuid?.() === 0) chownSync(dir, 0, gid);
  // Off (a no-op) without the config's `tracing` block; flushed after the agent closed.
  const tracing = await startTracing(config.tracing, 'agent', logger);
  const audit = new StoreAudit(config, logger);
  audit.open();
  onCrash(audit, logger);
  const socketPath = join(dir, 'agent.sock');
  const agent = buildAgent({ config, logger, socketPath, allowedUids: [uid], audit });
  await agent.listen();
  if (gid !== null && process.getuid?.() === 0) chownSync(socketPath, 0, gid);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'agent stopping');
    void agent
      .close()
      .then(() => audit.close())
      .then(() => tracing.shutdown())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err: (err as Error).message }, 'agent did not close cleanly');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The supervisor died (SIGKILL, OOM): its IPC channel closes, and an orphaned agent must not linger.
  process.on('disconnect', () => stop('disconnect'));
  process.send?.({ type: 'ready' });
}

/** An unhandled error: a sys_crash row when the store answers within 2 s, else a fatal line; exit 1. */
function onCrash(audit: StoreAudit, logger: Logger): void {
  let crashing = false;
  const crash = (err: unknown) => {
    if (crashing) return;
    crashing = true;
    const message = (err instanceof Error ? err.message : String(err)).slice(0, 500);
    const row = audit.record({ actor: 'agent', action: 'sys_crash', target: 'agent', result: 'failure', details: { error: message, pid: process.pid } });
    const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the store did not answer in time')), CRASH_AUDIT_MS).unref());
    Promise.race([row, deadline]).then(
      () => {
        logger.fatal({ err: message }, 'agent crashed (recorded in the audit log)');
        process.exit(1);
      },
      (auditErr: unknown) => {
        logger.fatal({ err: message, auditErr: (auditErr as Error).message }, 'agent crashed (not recorded in the audit log)');
        process.exit(1);
      },
    );
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

main().catch((err: unknown) => {
  // Before the logger exists (bad config) this is the only way to say why.
  process.stderr.write(`hackstream agent: ${(err as Error).message}\n`);
  process.exit(1);
});
