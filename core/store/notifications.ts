import pg from 'pg';
import type { Logger } from '../../lib/log.js';

/**
 * Postgres LISTEN/NOTIFY on a connection of its own (a pooled one would be handed to queries).
 * Used where a change committed by another process (the admin CLI, another control plane)
 * must reach this one at once, with the store as the only thing they share. A notification
 * sent while the connection was down is lost, so `reconnected` tells the caller to catch up.
 */
export interface NotificationHandlers {
  message(payload: string): void;
  /** Listening again after a lost connection: whatever was sent meanwhile is gone. */
  reconnected(): void;
}

export interface Listener {
  close(): Promise<void>;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15_000;

export function listen(config: pg.ClientConfig, channel: string, handlers: NotificationHandlers, logger: Logger): Listener {
  if (!CHANNEL.test(channel)) throw new Error(`notifications: bad channel name "${channel}"`);
  const log = logger.child({ component: 'notifications', channel });
  let client: pg.Client | undefined;
  let closed = false;
  let retryMs = RETRY_MIN_MS;
  let timer: NodeJS.Timeout | undefined;
  let first = true;

  const connect = async (): Promise<void> => {
    const c = new pg.Client(config);
    client = c;
    c.on('error', (err) => log.warn({ err: err.message }, 'notification connection lost'));
    c.on('notification', (n) => {
      if (n.channel === channel) handlers.message(n.payload ?? '');
    });
    c.on('end', () => {
      if (client === c) client = undefined;
      if (!closed) retry();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot listen for notifications; retrying');
      await c.end().catch(() => {});
      retry();
      return;
    }
    retryMs = RETRY_MIN_MS;
    if (!first) handlers.reconnected();
    first = false;
  };
  const retry = () => {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, retryMs);
    timer.unref();
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  };
  void connect();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await client?.end().catch(() => {});
    },
  };
}
