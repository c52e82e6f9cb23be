import type { Logger as OrmLogger } from 'typeorm';
import type { Logger } from '../../lib/log.js';

/**
 * TypeORM's log calls, sent to pino. Query text only at debug level and never the
 * parameters: they carry password and token hashes. Failed queries are debug too, since
 * a unique violation is an ordinary answer; callers log what matters to them.
 */
export class PinoOrmLogger implements OrmLogger {
  constructor(private readonly logger: Logger) {}

  logQuery(query: string): void {
    this.logger.trace({ query: clip(query) }, 'query');
  }

  logQueryError(error: string | Error, query: string): void {
    this.logger.debug({ err: typeof error === 'string' ? error : error.message, query: clip(query) }, 'query failed');
  }

  logQuerySlow(time: number, query: string): void {
    this.logger.warn({ ms: time, query: clip(query) }, 'slow query');
  }

  logSchemaBuild(message: string): void {
    this.logger.debug({ detail: message }, 'schema');
  }

  logMigration(message: string): void {
    this.logger.info({ detail: message }, 'migration');
  }

  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    const detail = message instanceof Error ? message.message : String(message);
    if (level === 'warn') this.logger.warn({ detail }, 'database');
    else this.logger.debug({ detail }, 'database');
  }
}

function clip(query: string): string {
  return query.length > 500 ? `${query.slice(0, 500)}…` : query;
}
