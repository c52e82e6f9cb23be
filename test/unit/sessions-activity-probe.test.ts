import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActivityProbe, type ActivityTarget } from '../../core/sessions/activity.js';
import type { SessionActivity } from '../../core/sessions/runtime.js';
import { silentLogger } from '../../lib/log.js';

/* The reaper's activity asks: bounded concurrency, failures tolerated, asks spaced by what input idleness allows. */

function targets(n: number, idleTimeoutS = 60): ActivityTarget[] {
  return Array.from({ length: n }, (_, i) => ({ sessionId: `s${i}`, containerId: `c${i}`, idleTimeoutS }));
}

describe('ActivityProbe', () => {
  it('asks at most `concurrency` containers at once and answers those past their timeout', async () => {
    let inFlight = 0;
    let most = 0;
    const source = {
      async activity(id: string): Promise<SessionActivity> {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setImmediate(r));
        inFlight--;
        return { clients: 1, idleSeconds: id === 'c3' || id === 'c7' ? 61 : 1, tokensSpent: 0 };
      },
    };
    const idle = await new ActivityProbe(source, silentLogger(), 4).inputIdle(targets(10));
    assert.ok(most <= 4 && most >= 2, `at most 4 at once (saw ${most})`);
    assert.deepEqual([...idle.entries()].sort(), [
      ['s3', 61],
      ['s7', 61],
    ]);
  });

  it('a failing ask, or no client, never reports idle and is asked again next time', async () => {
    const asked: string[] = [];
    const source = {
      async activity(id: string): Promise<SessionActivity> {
        asked.push(id);
        if (id === 'c0') throw new Error('xpra info timed out');
        return { clients: 0, idleSeconds: null, tokensSpent: 0 };
      },
    };
    const probe = new ActivityProbe(source, silentLogger());
    assert.equal((await probe.inputIdle(targets(2), 1_000)).size, 0);
    assert.equal((await probe.inputIdle(targets(2), 1_001)).size, 0);
    assert.deepEqual(asked, ['c0', 'c1', 'c0', 'c1']);
  });

  it('a client idle x of T seconds is not asked again before T − x seconds pass', async () => {
    let asks = 0;
    const probe = new ActivityProbe({ activity: async () => (asks++, { clients: 1, idleSeconds: 50, tokensSpent: 0 }) }, silentLogger());
    const [t] = targets(1, 60);
    await probe.inputIdle([t!], 0);
    await probe.inputIdle([t!], 9_999);
    assert.equal(asks, 1, 'not before 10 s');
    await probe.inputIdle([t!], 10_000);
    assert.equal(asks, 2);
  });
});
