import { limitKey } from '../../lib/limits.js';
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

/** Unlock generations are remembered this long (the KV's longest TTL; far past every counter). */
const EPOCH_TTL_MS = 30 * 86_400_000;

/**
 * Brute-force limits kept in the key-value store (Redis or in-process, the same atomic
 * operations), so they hold across instances; every decision is taken before hashing.
 * A source is an IPv4 address or an IPv6 /64 (IPv4-mapped IPv6 counts as IPv4).
 *
 * - Per account and source, progressive delays: after `sourceFreeFailures` consecutive
 *   failures, the next check waits `sourceDelayMs`, doubling per failure up to
 *   `sourceDelayMaxMs` (1, 2, 4 … 60 s). One check at a time per account and source: an
 *   allowed check holds the gate for the delay that follows if it fails. A success clears it.
 * - Per account, across sources: `accountLongLimit` checks in any `accountLongWindowMs`
 *   (each check holds one of that many slots for the window: 10 per 15 min, reliability A4).
 * - Known sources: a source with a successful login for the account in the last
 *   `knownSourceMs` (kept as a hash) is not held by the per-account limit, so an attacker
 *   using it up cannot lock the real user out (A6); its own delays still apply.
 * - Per source, failed checks across all usernames: at `ipFailLimit` it is banned for
 *   `ipBanMs` (Guacamole's 5 failures / 300 s, reliability A5).
 * - `unlock` (the admin's) starts the account's counters over; every lock lifts by itself.
 */
export class LoginThrottle {
  constructor(
    private readonly kv: KeyValueStore,
    private readonly limits: Limits,
  ) {}

  /** Refuses a source under a ban. Reads only. */
  async checkIp(ip: string): Promise<Refusal | null> {
    const until = Number(await this.kv.get(ipBanKey(ip)));
    const left = until - Date.now();
    return Number.isFinite(left) && left > 0 ? { scope: 'ip', retryAfterS: seconds(left), started: false } : null;
  }

  /** Takes one password check for the account from this source, or refuses it (nothing is hashed then). */
  async reserveAccount(username: string, ip: string): Promise<Refusal | null> {
    const k = await this.keys(username, ip);
    const known = (await this.kv.get(k.known)) !== null;
    if (!known) {
      const full = await this.fullUntil(k);
      if (full !== null) return { scope: 'account', retryAfterS: seconds(full - Date.now()), started: false };
    }
    const failures = Number(await this.kv.get(k.failures)) || 0;
    const hold = this.delayMs(failures + 1);
    if (hold > 0 && !(await this.kv.set(k.gate, String(Date.now() + hold), { ttlMs: hold, ifAbsent: true }))) {
      const until = Number(await this.kv.get(k.gate));
      return { scope: 'account', retryAfterS: seconds(until - Date.now()), started: false };
    }
    if (known) return null;
    const refusal = await this.takeSlot(k);
    // Refused by the account's limit: this source's turn is not used up.
    if (refusal && hold > 0) await this.kv.del(k.gate);
    return refusal;
  }

  /** After a failed check: the account and source wait longer; the source may be banned. True when a ban starts. */
  async failed(ip: string, username: string): Promise<boolean> {
    const l = this.limits;
    const k = await this.keys(username, ip);
    const n = await this.kv.incr(k.failures, l.sourceMemoryMs);
    const wait = this.delayMs(n.count);
    if (wait > 0) await this.kv.set(k.gate, String(Date.now() + wait), { ttlMs: wait });
    else await this.kv.del(k.gate);
    const fails = `login:ip:f:${sourceId(ip)}`;
    const f = await this.kv.incr(fails, l.ipFailWindowMs);
    if (f.count < l.ipFailLimit) return false;
    await this.kv.set(ipBanKey(ip), String(Date.now() + l.ipBanMs), { ttlMs: l.ipBanMs });
    await this.kv.del(fails);
    return true;
  }

  /**
   * After a success: this source's delays start over and it becomes known for the account.
   * The account's slots stay taken: the per-account bound holds whatever the user does.
   */
  async succeeded(username: string, ip: string): Promise<void> {
    const k = await this.keys(username, ip);
    await this.kv.del(k.failures);
    await this.kv.del(k.gate);
    await this.kv.set(k.known, '1', { ttlMs: this.limits.knownSourceMs });
  }

  /**
   * An admin's unlock: every counter of the account (its slots, every source's delays) starts
   * over. Known sources stay known; source bans are not the account's and stay.
   */
  async unlock(username: string): Promise<void> {
    await this.kv.incr(`login:acct:epoch:${accountId(username)}`, EPOCH_TTL_MS);
  }

  /** The delay after the n-th consecutive failure. */
  private delayMs(n: number): number {
    const l = this.limits;
    const over = n - l.sourceFreeFailures;
    if (over <= 0) return 0;
    return Math.min(l.sourceDelayMaxMs, l.sourceDelayMs * 2 ** Math.min(over - 1, 30));
  }

  /** When the account's slots were all found taken: until the first frees. Null when not full. */
  private async fullUntil(k: Keys): Promise<number | null> {
    const until = Number(await this.kv.get(k.full));
    return Number.isFinite(until) && until > Date.now() ? until : null;
  }

  /**
   * Takes a free slot of the account's rolling window. The scan starts at a rotating index
   * (so a large limit costs about one probe per check); a scan finding none marks the account
   * full until the first slot frees, so later refusals cost one read.
   */
  private async takeSlot(k: Keys, rescan = true): Promise<Refusal | null> {
    const { accountLongLimit: limit, accountLongWindowMs: window } = this.limits;
    const start = (await this.kv.incr(k.next, window)).count;
    for (let i = 0; i < limit; i++) {
      const slot = `${k.slot}:${(start + i) % limit}`;
      if (await this.kv.set(slot, String(Date.now() + window), { ttlMs: window, ifAbsent: true })) return null;
    }
    let first = Date.now() + window;
    for (let i = 0; i < limit; i++) {
      const until = Number(await this.kv.get(`${k.slot}:${i}`));
      if (Number.isFinite(until) && until > Date.now()) first = Math.min(first, until);
    }
    const left = first - Date.now();
    // Every slot freed between the two scans: one more try.
    if (left <= 0) return rescan ? this.takeSlot(k, false) : { scope: 'account', retryAfterS: 1, started: false };
    const started = await this.kv.set(k.full, String(first), { ttlMs: left, ifAbsent: true });
    return { scope: 'account', retryAfterS: seconds(left), started };
  }

  private async keys(username: string, ip: string): Promise<Keys> {
    const id = accountId(username);
    const epoch = Number(await this.kv.get(`login:acct:epoch:${id}`)) || 0;
    const pair = sha256Hex(`${id}\u0000${sourceKey(ip)}`).slice(0, 32);
    const acct = `${epoch}:${id}`;
    return {
      full: `login:acct:full:${acct}`,
      next: `login:acct:next:${acct}`,
      slot: `login:acct:slot:${acct}`,
      failures: `login:as:n:${epoch}:${pair}`,
      gate: `login:as:gate:${epoch}:${pair}`,
      known: `login:known:${pair}`,
    };
  }
}

interface Keys {
  full: string;
  next: string;
  slot: string;
  failures: string;
  gate: string;
  known: string;
}

/** Retry-After in whole seconds, at least 1 (also when the key vanished between two reads). */
function seconds(ms: number): number {
  return Number.isFinite(ms) ? Math.max(1, Math.ceil(ms / 1000)) : 1;
}

/** Usernames are case-insensitive; hashed so any input makes a short, safe key. */
function accountId(username: string): string {
  return sha256Hex(username.toLowerCase()).slice(0, 32);
}

/**
 * The source a client address belongs to: lib/limits.ts's limitKey (IPv4 as is, IPv6 by its
 * /64, IPv4-mapped IPv6 as IPv4). Anything else is hashed into a safe key.
 */
export function sourceKey(ip: string): string {
  return limitKey(ip) ?? `x${sha256Hex(ip).slice(0, 32)}`;
}

/** A source's name in KV keys (a hash of its sourceKey: the KV holds no client address). */
export function sourceId(ip: string): string {
  return sha256Hex(`src\u0000${sourceKey(ip)}`).slice(0, 32);
}

function ipBanKey(ip: string): string {
  return `login:ip:ban:${sourceId(ip)}`;
}
