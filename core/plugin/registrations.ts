import type { AuditSink, AuthProvider, PluginRegistrar, PluginRouter, QuotaPolicy, SessionListener } from './contract.js';
import { PluginError } from './errors.js';

/** One registration, remembered with the plugin that made it. */
export interface Owned<T> {
  readonly plugin: string;
  readonly value: T;
}

/** Everything plugins registered, in registration (= init) order. */
export interface Registrations {
  readonly authProviders: Owned<AuthProvider>[];
  quotaPolicy: Owned<QuotaPolicy> | undefined;
  readonly routers: Owned<PluginRouter>[];
  readonly auditSinks: Owned<AuditSink>[];
  readonly sessionListeners: Owned<SessionListener>[];
}

export function emptyRegistrations(): Registrations {
  return { authProviders: [], quotaPolicy: undefined, routers: [], auditSinks: [], sessionListeners: [] };
}

/**
 * A registrar for one plugin's init. `seal()` closes it for good: every later call throws,
 * which is how the registry freezes after init (and after an init that timed out).
 */
export function openRegistrar(plugin: string, into: Registrations): { registrar: PluginRegistrar; seal(): void } {
  let open = true;
  const accept = (what: string, value: unknown, method?: string): void => {
    if (!open) throw new PluginError(plugin, `plugin "${plugin}" registered ${what} after its init; register only during init`);
    const ok = method ? typeof (value as Record<string, unknown> | null)?.[method] === 'function' : typeof value === 'function';
    if (!ok) throw new PluginError(plugin, `plugin "${plugin}" registered ${what} without ${method ? `a ${method}() method` : 'a function'}`);
  };
  const registrar: PluginRegistrar = Object.freeze({
    authProvider(provider: AuthProvider) {
      accept('an auth provider', provider, 'authenticate');
      into.authProviders.push({ plugin, value: provider });
    },
    quotaPolicy(policy: QuotaPolicy) {
      accept('a quota policy', policy, 'check');
      accept('a quota policy', policy, 'effectiveQuota');
      const current = into.quotaPolicy;
      if (current) {
        throw new PluginError(plugin, `plugin "${plugin}" registered a quota policy, but "${current.plugin}" already did; enable only one quota policy`);
      }
      into.quotaPolicy = { plugin, value: policy };
    },
    httpRoutes(router: PluginRouter) {
      accept('HTTP routes', router, 'routes');
      into.routers.push({ plugin, value: router });
    },
    auditSink(sink: AuditSink) {
      accept('an audit sink', sink, 'write');
      into.auditSinks.push({ plugin, value: sink });
    },
    sessionEvents(listener: SessionListener) {
      accept('a session listener', listener);
      into.sessionListeners.push({ plugin, value: listener });
    },
  });
  return { registrar, seal: () => void (open = false) };
}
