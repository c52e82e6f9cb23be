/*
 * Connect tokens are spent inside the session container (its xpra authentication module keeps
 * a count); control learns of it each time it reads a session's activity. This turns those
 * running totals into the redeemed-tokens counter: each container's increase since the last
 * reading, once.
 */
import { connectTokensRedeemed } from '../metrics/registry.js';
import type { SessionActivity } from './runtime.js';

/** Containers remembered at most (least recently read forgotten first): far above a host's sessions. */
const MAX_CONTAINERS = 10_000;

export class RedeemedTokens {
  private readonly seen = new Map<string, number>();

  /** Counts what `containerId` spent since its last reading (all of it at the first) and passes the reading on. */
  observe(containerId: string, activity: SessionActivity): SessionActivity {
    const before = this.seen.get(containerId) ?? 0;
    if (activity.tokensSpent > before) connectTokensRedeemed.inc(activity.tokensSpent - before);
    this.seen.delete(containerId);
    this.seen.set(containerId, Math.max(before, activity.tokensSpent));
    if (this.seen.size > MAX_CONTAINERS) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    return activity;
  }
}
