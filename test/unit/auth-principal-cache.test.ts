import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PrincipalCache } from '../../core/auth/principal-cache.js';
import type { Principal } from '../../core/auth/index.js';
import type { User } from '../../core/store/entities.js';

function principal(id: string): Principal {
  return { id, username: `u-${id}`, role: 'user', family: 'f', user: { id } as User };
}

/** A cache on a hand-driven clock, listening (as with a live invalidation channel). */
function cache(opts: { ttlMs?: number; maxEntries?: number } = {}) {
  let now = 1_000_000;
  const c = new PrincipalCache({ ttlMs: opts.ttlMs ?? 500, maxEntries: opts.maxEntries ?? 10, now: () => now });
  c.setListening(true);
  return { c, advance: (ms: number) => (now += ms), now: () => now };
}

describe('principal cache', () => {
  it('serves an entry for at most its TTL', () => {
    const { c, advance, now } = cache();
    c.set('h1', principal('a'), now() + 60_000, c.ticket());
    assert.equal(c.get('h1')?.id, 'a');
    advance(499);
    assert.equal(c.get('h1')?.id, 'a');
    advance(1);
    assert.equal(c.get('h1'), undefined, 'gone at the TTL');
  });

  it('never serves a token past its own expiry', () => {
    const { c, advance, now } = cache();
    c.set('h1', principal('a'), now() + 100, c.ticket());
    advance(100);
    assert.equal(c.get('h1'), undefined);
    c.set('h2', principal('a'), now(), c.ticket());
    assert.equal(c.get('h2'), undefined, 'an expired token is not stored');
  });

  it('forgets every entry of a changed user, and only theirs', () => {
    const { c, now } = cache();
    c.set('a1', principal('a'), now() + 60_000, c.ticket());
    c.set('a2', principal('a'), now() + 60_000, c.ticket());
    c.set('b1', principal('b'), now() + 60_000, c.ticket());
    c.forgetUser('a');
    assert.equal(c.get('a1'), undefined);
    assert.equal(c.get('a2'), undefined);
    assert.equal(c.get('b1')?.id, 'b');
  });

  it('does not store a lookup that began before a change (its rows may predate it)', () => {
    const { c, now } = cache();
    const ticket = c.ticket();
    c.forgetUser('a');
    c.set('a1', principal('a'), now() + 60_000, ticket);
    assert.equal(c.get('a1'), undefined);
    c.set('a1', principal('a'), now() + 60_000, c.ticket());
    assert.equal(c.get('a1')?.id, 'a', 'a lookup begun after it is stored');
  });

  it('stays within its size cap, dropping the oldest first', () => {
    const { c, now } = cache({ maxEntries: 3 });
    for (const k of ['1', '2', '3', '4', '5']) c.set(k, principal(k), now() + 60_000, c.ticket());
    assert.equal(c.size, 3);
    assert.equal(c.get('1'), undefined);
    assert.equal(c.get('2'), undefined);
    assert.equal(c.get('5')?.id, '5');
  });

  it('serves and stores nothing while the invalidation channel is down, and starts empty after', () => {
    const { c, now } = cache();
    c.set('a1', principal('a'), now() + 60_000, c.ticket());
    const ticket = c.ticket();
    c.setListening(false);
    assert.equal(c.active, false);
    assert.equal(c.get('a1'), undefined);
    c.set('a2', principal('a'), now() + 60_000, c.ticket());
    assert.equal(c.size, 0);
    c.setListening(true);
    assert.equal(c.get('a1'), undefined, 'what was held before the cut is gone');
    c.set('a3', principal('a'), now() + 60_000, ticket);
    assert.equal(c.get('a3'), undefined, 'a lookup from before the cut is not stored');
  });

  it('is off with a TTL of 0', () => {
    const { c, now } = cache({ ttlMs: 0 });
    c.set('a1', principal('a'), now() + 60_000, c.ticket());
    assert.equal(c.get('a1'), undefined);
    assert.equal(c.active, false);
  });
});
