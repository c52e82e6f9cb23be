import type { Logger } from '../../lib/log.js';
import { pluginErrors } from '../metrics/registry.js';
import type { SessionEvent, SessionListener } from './contract.js';
import type { Owned } from './registrations.js';

export interface HostSessions {
  /** Delivers a session event to every listener; returns at once, never throws. */
  emit(event: SessionEvent): void;
}

export function createSessionEvents(listeners: readonly Owned<SessionListener>[], logger: Logger): HostSessions {
  const failed = (plugin: string, event: SessionEvent) => (err: unknown) => {
    pluginErrors.inc({ plugin, extension: 'session_events' });
    logger.error({ err, plugin, sessionId: event.sessionId, event: event.type }, 'session listener failed');
  };
  return {
    emit(event) {
      const frozen = Object.freeze({ ...event });
      for (const { plugin, value: listener } of listeners) {
        try {
          const result = listener(frozen);
          if (result instanceof Promise) result.catch(failed(plugin, frozen));
        } catch (err) {
          failed(plugin, frozen)(err);
        }
      }
    },
  };
}
