import type { Logger } from '../../lib/log.js';
import type { AuthAnswer, AuthAttempt, AuthProvider } from './contract.js';
import type { Owned, Registrations } from './registrations.js';
import { withTimeout } from './timeout.js';

/** The chain's verdict; `provider` names the plugin that decided (null: nobody accepted). */
export type AuthDecision =
  | { readonly result: 'ok'; readonly userId: string; readonly provider: string }
  | { readonly result: 'deny'; readonly reason: string; readonly provider: string | null };

export interface HostAuth {
  /** Runs the provider chain: first ok wins, a deny stops, all skip (or none) denies. */
  authenticate(attempt: AuthAttempt): Promise<AuthDecision>;
}

/** The auth side of the host: the password chain (and, in contract v2, flows and second factors). */
export function createAuthChain(reg: Registrations, logger: Logger, timeoutMs: number): HostAuth {
  const providers: readonly Owned<AuthProvider>[] = [...reg.authProviders];
  return {
    async authenticate(attempt) {
      for (const { plugin, value: provider } of providers) {
        const answer = await ask(provider, attempt, timeoutMs).catch((err: unknown) => {
          logger.error({ err, plugin }, 'auth provider failed; denying');
          return { result: 'deny', reason: 'provider-error' } as const;
        });
        if (answer.result === 'ok') return { result: 'ok', userId: answer.userId, provider: plugin };
        if (answer.result === 'deny') return { result: 'deny', reason: answer.reason, provider: plugin };
      }
      return { result: 'deny', reason: 'no-provider-accepted', provider: null };
    },
  };
}

/** One provider's answer, checked: anything but a well-formed answer is an error. */
async function ask(provider: AuthProvider, attempt: AuthAttempt, timeoutMs: number): Promise<AuthAnswer> {
  const answer: unknown = await withTimeout(timeoutMs, () => provider.authenticate(attempt));
  const a = answer as Record<string, unknown> | null | undefined;
  if (a?.result === 'ok' && typeof a.userId === 'string' && a.userId !== '') return { result: 'ok', userId: a.userId };
  if (a?.result === 'skip') return { result: 'skip' };
  if (a?.result === 'deny') return { result: 'deny', reason: typeof a.reason === 'string' ? a.reason : 'denied' };
  throw new Error(`invalid answer ${JSON.stringify(answer)}`);
}
