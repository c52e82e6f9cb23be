import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidRouteError, MemoryRouteTable } from '../../lib/route-table.js';

describe('MemoryRouteTable', () => {
  it('adds, looks up, lists and removes normalised hostnames', async () => {
    const t = new MemoryRouteTable();
    await t.add('Abc.Sessions.Test.', { host: '10.0.0.5', port: 14500 });
    assert.deepEqual(t.lookup('abc.sessions.test'), { host: '10.0.0.5', port: 14500 });
    assert.equal(t.lookup('Abc.Sessions.Test'), undefined, 'lookup takes the normalised name the parser returns');
    assert.deepEqual(t.list(), [{ hostname: 'abc.sessions.test', upstream: { host: '10.0.0.5', port: 14500 } }]);
    await t.add('abc.sessions.test', { host: '10.0.0.6', port: 14501 });
    assert.deepEqual(t.lookup('abc.sessions.test'), { host: '10.0.0.6', port: 14501 }, 'add replaces');
    assert.equal(await t.remove('ABC.sessions.test'), true);
    assert.equal(await t.remove('abc.sessions.test'), false);
    assert.equal(t.lookup('abc.sessions.test'), undefined);
  });

  it('tells listeners about removed routes only', async () => {
    const t = new MemoryRouteTable();
    const removed: string[] = [];
    const off = t.onRemove((h) => removed.push(h));
    await t.add('a.sessions.test', { host: '127.0.0.1', port: 1 });
    await t.remove('a.sessions.test');
    await t.remove('a.sessions.test');
    off();
    await t.add('b.sessions.test', { host: '127.0.0.1', port: 1 });
    await t.remove('b.sessions.test');
    assert.deepEqual(removed, ['a.sessions.test']);
  });

  const invalid: Array<[string, string, { host: string; port: number }]> = [
    ['an underscore', 'a_b.sessions.test', { host: 'x', port: 1 }],
    ['an IPv4 literal', '10.0.0.1', { host: 'x', port: 1 }],
    ['a 254-character name', `${'a'.repeat(63)}.`.repeat(4) + 'ab', { host: 'x', port: 1 }],
    ['a space', 'a b.test', { host: 'x', port: 1 }],
    ['port 0', 'a.test', { host: 'x', port: 0 }],
    ['port 65536', 'a.test', { host: 'x', port: 65536 }],
    ['an empty upstream host', 'a.test', { host: '', port: 1 }],
  ];
  for (const [desc, hostname, upstream] of invalid) {
    it(`refuses a route with ${desc}`, async () => {
      const t = new MemoryRouteTable();
      await assert.rejects(t.add(hostname, upstream), InvalidRouteError);
      assert.deepEqual(t.list(), []);
    });
  }
});
