import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../../core/config/schema.js';
import { AgentError } from '../../agent/errors.js';
import { agentLimits, checkContainerLimits, Ledger } from '../../agent/limits.js';
import { LineReader } from '../../lib/line-reader.js';
import { parseRequest } from '../../agent/server.js';
import type { ContainerUsage } from '../../agent/docker-runtime.js';

/*
 * The agent's pure parts: limits from config (never from the request), the ledger that keeps
 * racing creates within capacity (an in-memory usage list stands in for the engine), the
 * line splitter's 1 MiB bound, and the request parser's codes.
 */

const limits = agentLimits(configSchema.parse({ sessions: { capacity: { maxContainers: 3, memoryMb: 3000 }, pidsLimit: 256 } }).sessions, 4);
const isLimit = (err: unknown) => err instanceof AgentError && err.code === 'LIMIT_EXCEEDED';

describe('agent limits', () => {
  it('come from the config and the host', () => {
    assert.deepEqual(
      { maxContainers: limits.maxContainers, memoryMb: limits.memoryMb, pidsLimit: limits.pidsLimit, maxCpus: limits.maxCpus },
      { maxContainers: 3, memoryMb: 3000, pidsLimit: 256, maxCpus: 4 },
    );
  });

  it('refuse a container over a per-container ceiling', () => {
    const table: [string, { memoryMb: number; cpus: number; pids: number }, boolean][] = [
      ['within', { memoryMb: 1000, cpus: 4, pids: 256 }, true],
      ['memory over the total', { memoryMb: 3001, cpus: 1, pids: 1 }, false],
      ['more CPUs than the host', { memoryMb: 100, cpus: 4.5, pids: 1 }, false],
      ['pids over pidsLimit', { memoryMb: 100, cpus: 1, pids: 257 }, false],
    ];
    for (const [desc, l, ok] of table) {
      if (ok) checkContainerLimits(l, limits);
      else assert.throws(() => checkContainerLimits(l, limits), isLimit, desc);
    }
  });

  it('the ledger counts in-flight creates, so racing creates cannot pass a limit together', async () => {
    const live: ContainerUsage[] = [{ containerId: 'a', sessionId: 'sa', memoryMb: 1000 }];
    const ledger = new Ledger(limits, async () => live);
    const results = await Promise.allSettled([ledger.admit(1000, 's1'), ledger.admit(1000, 's2'), ledger.admit(500, 's3')]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected'], 'three containers at most');
    const [release] = results;
    assert.equal(release.status, 'fulfilled');
    if (release.status === 'fulfilled') release.value();
    await assert.rejects(ledger.admit(1001, 's4'), isLimit, 'memory: 1000 live + 1000 pending + 1001 > 3000');
    const ok = await ledger.admit(1000, 's5');
    ok();
  });

  it("a create's reservation is not counted again once its container shows in usage (the race agent-rpc found)", async () => {
    const live: ContainerUsage[] = [];
    const two = { ...limits, maxContainers: 2 };
    const ledger = new Ledger(two, async () => live);
    const releaseFirst = await ledger.admit(1000, 's1');
    // The first create's container exists before its reservation is released (it is still starting).
    live.push({ containerId: 'c1', sessionId: 's1', memoryMb: 1000 });
    const releaseSecond = await ledger.admit(1000, 's2');
    await assert.rejects(ledger.admit(500, 's3'), isLimit, 'two live or starting: the third is refused');
    releaseFirst();
    releaseSecond();
  });

  it('a resize counts only the growth of that container', async () => {
    const live: ContainerUsage[] = [
      { containerId: 'a', sessionId: 'sa', memoryMb: 1000 },
      { containerId: 'b', sessionId: 'sb', memoryMb: 1500 },
    ];
    const ledger = new Ledger(limits, async () => live);
    (await ledger.resize('a', 1500))();
    await assert.rejects(ledger.resize('a', 1501), isLimit);
  });
});

describe('agent line reader', () => {
  it('splits lines across chunks and stops at the first line over the bound', () => {
    const lines: string[] = [];
    let overflows = 0;
    const r = new LineReader(10, (l) => lines.push(l), () => overflows++);
    r.push(Buffer.from('ab'));
    r.push(Buffer.from('c\r\nde\nfghij'));
    r.push(Buffer.from('k\n'));
    assert.deepEqual(lines, ['abc', 'de', 'fghijk']);
    r.push(Buffer.from('0123456789'));
    assert.equal(overflows, 0, 'exactly the bound is fine');
    r.push(Buffer.from('x\nmore\n'));
    assert.equal(overflows, 1);
    assert.deepEqual(lines, ['abc', 'de', 'fghijk'], 'nothing after an overflow');
  });
});

describe('agent request parser', () => {
  const table: [string, string, string | null][] = [
    ['valid hello', '{"v":1,"id":1,"method":"hello","params":{}}', null],
    ['not JSON', '{', 'BAD_REQUEST'],
    ['a number', '42', 'BAD_REQUEST'],
    ['version 2', '{"v":2,"id":1,"method":"hello","params":{}}', 'UNSUPPORTED_VERSION'],
    ['no version', '{"id":1,"method":"hello","params":{}}', 'VALIDATION_FAILED'],
    ['extra envelope key', '{"v":1,"id":1,"method":"hello","params":{},"x":1}', 'VALIDATION_FAILED'],
    ['inherited name as method', '{"v":1,"id":1,"method":"toString","params":{}}', 'UNKNOWN_METHOD'],
    ['params for hello', '{"v":1,"id":1,"method":"hello","params":{"a":1}}', 'VALIDATION_FAILED'],
  ];
  for (const [desc, line, code] of table) {
    it(desc, () => {
      const r = parseRequest(line);
      assert.equal('error' in r ? r.error.code : null, code);
    });
  }

  it('answers to the id of a refused request when it can read one, and names the paths', () => {
    const r = parseRequest('{"v":1,"id":5,"method":"remove","params":{"containerId":"x"}}');
    assert.ok('error' in r);
    assert.equal(r.id, 5);
    assert.equal(r.target, 'remove');
    assert.match(r.error.message, /params\.containerId/);
  });
});
