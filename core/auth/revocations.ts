import type { Logger } from '../../lib/log.js';
import type { KeyValueStore, KvSubscription } from '../store/kv.js';
import type { PrincipalCache } from './principal-cache.js';

const CHANNEL = 'auth:user-changed';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Tells every control process that a user's tokens or account changed, so each forgets its
 * cached principals of that user: Redis pub/sub across processes, in-process with the memory
 * KV. A message lost anyway (a silent network cut, a process with no KV such as the admin CLI)
 * is bounded by the cache's TTL.
 */
export class Revocations {
  private readonly subscription: KvSubscription;

  constructor(
    private readonly kv: KeyValueStore,
    private readonly cache: PrincipalCache,
    private readonly logger: Logger,
  ) {
    this.subscription = kv.subscribe(CHANNEL, {
      message: (m) => this.onMessage(m),
      live: (live) => {
        cache.setListening(live);
        logger.info({ live }, 'token revocation channel');
      },
    });
    cache.setListening(this.subscription.live);
  }

  /** After the commit of a change to the user: forgets locally at once, then tells the others. */
  async userChanged(userId: string): Promise<void> {
    this.cache.forgetUser(userId);
    try {
      await this.kv.publish(CHANNEL, userId);
    } catch (err) {
      // The change is committed; other processes see it when their cache entries expire.
      this.logger.warn({ userId, err: err instanceof Error ? err.message : String(err) }, 'token revocation not published');
    }
  }

  close(): Promise<void> {
    return this.subscription.close();
  }

  private onMessage(message: string): void {
    if (UUID.test(message)) this.cache.forgetUser(message);
    else this.logger.warn({ length: message.length }, 'malformed token revocation message ignored');
  }
}
