import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseXpraActivity } from '../../agent/xpra-info.js';

/* `xpra info` (3.1) lines → a session's activity: one client, several, none, spent tokens, and garbage. */

describe('parseXpraActivity', () => {
  const cases: Array<{ what: string; output: string; want: { clients: number; idleSeconds: number | null; tokensSpent: number } | 'throws' }> = [
    { what: 'one client: client.idle_time', output: 'clients=1\nclient.idle_time=42\n', want: { clients: 1, idleSeconds: 42, tokensSpent: 0 } },
    { what: 'several clients: the most recent input wins', output: 'client.0.idle_time=300\nclient.1.idle_time=7\nclients=2', want: { clients: 2, idleSeconds: 7, tokensSpent: 0 } },
    { what: 'no client attached', output: 'clients=0\n', want: { clients: 0, idleSeconds: null, tokensSpent: 0 } },
    { what: 'other keys that look alike are ignored', output: 'clients=1\nclient.idle_time=9\nclient.window.idle_time=1\nclients.unauthenticated=3', want: { clients: 1, idleSeconds: 9, tokensSpent: 0 } },
    { what: 'the spent-token count the command prints first', output: 'tokens_spent=3\nclients=1\nclient.idle_time=4', want: { clients: 1, idleSeconds: 4, tokensSpent: 3 } },
    { what: 'no clients line: xpra did not answer', output: 'error: cannot connect\n', want: 'throws' },
  ];
  for (const c of cases) {
    it(c.what, () => {
      if (c.want === 'throws') assert.throws(() => parseXpraActivity(c.output));
      else assert.deepEqual(parseXpraActivity(c.output), c.want);
    });
  }
});
