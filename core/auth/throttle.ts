import { isIP } from 'node:net';
import type { KeyValueStore } from '../store/kv.js';
import type { AuthSettings } from './settings.js';
import { sha256Hex } from './tokens.js';

/** Why a login is refused before any password is checked. */
export interface Refusal {
  readonly scope: 'account' | 'ip';
  /** Seconds until trying again can succeed (the Retry-After header). */
  readonly retryAfterS: number;
  /** True for the first refusal of this lock or ban (it is audited once, not per attempt). */
  readonly started: boolean;
}

type Limits = AuthSettings['throttle'];

/**
 * Brute-force limits kept in the key-value store (Redis or in-process, the same atomic
 * counters), so they hold across gateway instances and never hash before deciding.
 *
 * - Per account, two fixed windows counted BEFORE hashing: `accountShortLimit` checks per
 *   `accountShortWindowMs` (after a few typos the user waits at most a minute), and of those
 *   let through, `accountLongLimit` per `accountLongWindowMs`. A window starts at its first
 *   attempt, so any 15 minutes overlap at most two long windows: at most 2 × 5 = 10 hash
 *   evaluations (reliability A4). A success clears both: only failed (or concurrent)
 *   attempts accumulate. Every lock lifts by itself (backoff, never a permanent lock).
 * - Per client IP, failed checks across all usernames; at `ipFailLimit` the IP is banned
 *   for `ipBanMs` (Guacamole's 5 failures / 300 s, reliability A5).
 */
export class LoginThrottle {
  constructor(
    private readonly kv: KeyValueStore,
    private readonly limits: Limits,
  ) {}

  /** Refuses an IP under a ban. Reads only. */
  async checkIp(ip: string): Promise<Refusal | null> {
    const until = Number(await this.kv.get(ipBanKey(ip)));
    const left = until - Date.now();
    return Number.isFinite(left) && left > 0 ? { scope: 'ip', retryAfterS: Math.ceil(left / 1000), started: false } : null;
  }

  /** Counts one password check against the account, or refuses it (nothing is hashed then). */
  async reserveAccount(username: string, _ip: string): Promise<Refusal | null> {
    const id = accountId(username);
    const l = this.limits;
    // The long window counts only attempts the short one let through: refusals cost nothing.
    const tiers = [
      { key: `login:acct:s:${id}`, limit: l.accountShortLimit, windowMs: l.accountShortWindowMs },
      { key: `login:acct:l:${id}`, limit: l.accountLongLimit, windowMs: l.accountLongWindowMs },
    ];
    for (const tier of tiers) {
      const c = await this.kv.incr(tier.key, tier.windowMs);
      if (c.count > tier.limit) {
        return { scope: 'account', retryAfterS: Math.max(1, Math.ceil(c.ttlMs / 1000)), started: c.count === tier.limit + 1 };
      }
    }
    return null;
  }

  /** After a failed check: counts it for the IP and bans the IP at the limit. True when a ban starts. */
  async failed(ip: string, _username: string): Promise<boolean> {
    const l = this.limits;
    const n = await this.kv.incr(`login:ip:f:${ipKey(ip)}`, l.ipFailWindowMs);
    if (n.count < l.ipFailLimit) return false;
    await this.kv.set(ipBanKey(ip), String(Date.now() + l.ipBanMs), { ttlMs: l.ipBanMs });
    await this.kv.del(`login:ip:f:${ipKey(ip)}`);
    return true;
  }

  /** After a success: the account's counters start over. */
  async succeeded(username: string, _ip: string): Promise<void> {
    const id = accountId(username);
    await this.kv.del(`login:acct:s:${id}`);
    await this.kv.del(`login:acct:l:${id}`);
  }
}

/** Usernames are case-insensitive; hashed so any input makes a short, safe key. */
function accountId(username: string): string {
  return sha256Hex(username.toLowerCase()).slice(0, 32);
}

function ipKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  const plain = mapped ?? ip;
  return isIP(plain) ? plain : sha256Hex(ip).slice(0, 32);
}

function ipBanKey(ip: string): string {
  return `login:ip:ban:${ipKey(ip)}`;
}
