import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CliError, EXIT } from '../../client/errors.js';
import { DEFAULT_GIVE_UP_MS, giveUpMs, isTransient, reconnectDelay, untilReachable } from '../../client/reconnect.js';

describe('reconnect backoff', () => {
  it('doubles from about 1 s, is capped at 15 s and stays in the upper half of each step', () => {
    for (const [attempt, lo, hi] of [
      [0, 500, 1_000],
      [1, 1_000, 2_000],
      [3, 4_000, 8_000],
      [4, 7_500, 15_000],
      [40, 7_500, 15_000],
    ] as const) {
      assert.equal(reconnectDelay(attempt, () => 0), lo, `attempt ${attempt}, lowest`);
      assert.equal(reconnectDelay(attempt, () => 1), hi, `attempt ${attempt}, highest`);
    }
  });

  it('is jittered: the same attempt waits differently with different draws', () => {
    assert.notEqual(reconnectDelay(2, () => 0.1), reconnectDelay(2, () => 0.9));
  });

  it('gives up after HACKSTREAM_RECONNECT_GIVE_UP seconds, else 5 min and a margin', () => {
    assert.equal(giveUpMs({}), DEFAULT_GIVE_UP_MS);
    assert.ok(DEFAULT_GIVE_UP_MS > 5 * 60_000);
    assert.equal(giveUpMs({ HACKSTREAM_RECONNECT_GIVE_UP: '90' }), 90_000);
    assert.throws(() => giveUpMs({ HACKSTREAM_RECONNECT_GIVE_UP: 'soon' }), (e: unknown) => e instanceof CliError && e.exitCode === EXIT.USAGE);
  });
});

describe('which failures are worth waiting out', () => {
  const cases: [string, unknown, boolean][] = [
    ['no route to the server', new CliError(EXIT.UNREACHABLE, 'cannot reach the server at h: ENETUNREACH'), true],
    ['the server cannot run sessions right now', new CliError(EXIT.RUNTIME_UNAVAILABLE, 'x'), true],
    ['a bare 502 from a proxy', new CliError(EXIT.FAILURE, 'HTTP_502: bad gateway', { apiCode: 'HTTP_502' }), true],
    ['the session is gone', new CliError(EXIT.SESSION_GONE, 'ended'), false],
    ['the login is refused', new CliError(EXIT.AUTH, 'expired'), false],
    ['a certificate mismatch', new CliError(EXIT.CA_MISMATCH, 'x'), false],
    ['a plain error', new Error('boom'), false],
  ];
  for (const [what, err, transient] of cases) it(`${what}: ${transient ? 'retry' : 'stop'}`, () => assert.equal(isTransient(err), transient));
});

describe('untilReachable', () => {
  const quiet = { id: 's1', giveUpMs: 60_000, sleep: () => Promise.resolve(), random: () => 0.5 };

  it('retries an unreachable server, saying "reconnecting…" each time, and returns once it answers', async () => {
    const lines: string[] = [];
    let calls = 0;
    const v = await untilReachable(async () => {
      if (++calls < 4) throw new CliError(EXIT.UNREACHABLE, 'cannot reach the server at h: ENETUNREACH; check');
      return 'ok';
    }, { ...quiet, lostAt: Date.now(), log: (m) => lines.push(m) });
    assert.equal(v, 'ok');
    assert.equal(lines.length, 3);
    for (const l of lines) assert.match(l, /^reconnecting… cannot reach the server \(ENETUNREACH\); next try in [\d.]+ s \(giving up in /);
  });

  it('stops at once when the session is gone', async () => {
    await assert.rejects(
      untilReachable(() => Promise.reject(new CliError(EXIT.SESSION_GONE, 'session s1 has ended')), { ...quiet, lostAt: Date.now(), log: () => {} }),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.SESSION_GONE,
    );
  });

  it('stops with AUTH and says to log in again when the login is refused', async () => {
    await assert.rejects(
      untilReachable(() => Promise.reject(new CliError(EXIT.AUTH, 'no username given on stdin')), { ...quiet, lostAt: Date.now(), log: () => {} }),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.AUTH && /log in again \(hackstream login\)/.test(e.message),
    );
  });

  it('gives up with UNREACHABLE once the outage outlasts the give-up', async () => {
    const lines: string[] = [];
    await assert.rejects(
      untilReachable(() => Promise.reject(new CliError(EXIT.UNREACHABLE, 'cannot reach the server at h: ETIMEDOUT')), { ...quiet, lostAt: Date.now() - 59_500, log: (m) => lines.push(m) }),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.UNREACHABLE && /gave up re-attaching to session s1/.test(e.message),
    );
    assert.equal(lines.length, 0, 'no wait that would end past the give-up');
  });
});
