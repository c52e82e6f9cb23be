import type { AuditSink, AuthProvider, DeviceFlow, PluginRegistrar, PluginRouter, QuotaPolicy, RedirectFlow, SecondFactor, SessionListener } from './contract.js';
import { FLOW_ID_PATTERN } from './extensions.js';
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
  readonly redirectFlows: Owned<RedirectFlow>[];
  readonly deviceFlows: Owned<DeviceFlow>[];
  readonly secondFactors: Owned<SecondFactor>[];
}

export function emptyRegistrations(): Registrations {
  return { authProviders: [], quotaPolicy: undefined, routers: [], auditSinks: [], sessionListeners: [], redirectFlows: [], deviceFlows: [], secondFactors: [] };
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
    redirectFlow(flow: RedirectFlow) {
      accept('a redirect flow', flow, 'begin');
      accept('a redirect flow', flow, 'callback');
      uniqueId('redirect flow', flow.id, into.redirectFlows);
      into.redirectFlows.push({ plugin, value: flow });
    },
    deviceFlow(flow: DeviceFlow) {
      accept('a device flow', flow, 'start');
      accept('a device flow', flow, 'poll');
      uniqueId('device flow', flow.id, into.deviceFlows);
      into.deviceFlows.push({ plugin, value: flow });
    },
    secondFactor(factor: SecondFactor) {
      accept('a second factor', factor, 'required');
      accept('a second factor', factor, 'verify');
      uniqueId('second factor', factor.id, into.secondFactors);
      into.secondFactors.push({ plugin, value: factor });
    },
  });
  /** Ids are unique per kind: a provider's redirect flow and device flow may share one (`/v1/auth/flows/<id>/…`). */
  function uniqueId(what: string, id: unknown, taken: readonly Owned<{ readonly id: string }>[]): void {
    if (typeof id !== 'string' || !FLOW_ID_PATTERN.test(id)) {
      throw new PluginError(plugin, `plugin "${plugin}" registered a ${what} with id ${JSON.stringify(id)}; ids are 1–63 of a-z 0-9 - starting with a letter or digit`);
    }
    const clash = taken.find((t) => t.value.id === id);
    if (clash) throw new PluginError(plugin, `plugin "${plugin}" registered a ${what} "${id}", but "${clash.plugin}" already did; ids must be unique`);
  }
  return { registrar, seal: () => void (open = false) };
}
