import type { Principal } from './token-service.js';

export interface PrincipalCacheOptions {
  /** How long an entry may be served without asking the store again (0: no cache). */
  ttlMs: number;
  /** At most this many entries; the oldest goes first. */
  maxEntries: number;
  now?: () => number;
}

interface Entry {
  principal: Principal;
  expiresAt: number;
}

/**
 * Authenticated principals by access-token hash, for this process. An entry lives at most
 * `ttlMs` (the bound on a missed invalidation) and never past its token's own expiry. Every
 * change that ends a user's tokens forgets that user's entries at once; a lookup that began
 * before any forget is not stored (its rows may predate the change). While the invalidation
 * channel is down nothing is served or stored, since a change could go unheard.
 */
export class PrincipalCache {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private generation = 0;
  private listening = false;

  constructor(private readonly opts: PrincipalCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether entries are served (the invalidation channel is live and the TTL is not 0). */
  get active(): boolean {
    return this.listening && this.opts.ttlMs > 0;
  }

  get(tokenHash: string): Principal | undefined {
    if (!this.active) return undefined;
    const e = this.entries.get(tokenHash);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.entries.delete(tokenHash);
      return undefined;
    }
    return e.principal;
  }

  /** Taken before the lookup whose result may be stored with `set`. */
  ticket(): number {
    return this.generation;
  }

  set(tokenHash: string, principal: Principal, tokenExpiresAt: number, ticket: number): void {
    if (!this.active || ticket !== this.generation) return;
    const now = this.now();
    const expiresAt = Math.min(now + this.opts.ttlMs, tokenExpiresAt);
    if (expiresAt <= now) return;
    this.entries.delete(tokenHash);
    if (this.entries.size >= this.opts.maxEntries) this.evictOne(now);
    this.entries.set(tokenHash, { principal, expiresAt });
  }

  /** Ends every entry of the user (their tokens changed). */
  forgetUser(userId: string): void {
    this.generation += 1;
    for (const [hash, e] of this.entries) if (e.principal.id === userId) this.entries.delete(hash);
  }

  /** The invalidation channel went up or down: either way what is held may have missed a change. */
  setListening(listening: boolean): void {
    this.listening = listening;
    this.generation += 1;
    this.entries.clear();
  }

  private evictOne(now: number): void {
    // Insertion order is expiry order (one TTL for all), except entries cut short by their token.
    for (const [hash, e] of this.entries) {
      this.entries.delete(hash);
      if (e.expiresAt > now) return;
    }
  }
}
