import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentRuntime } from '../../core/sessions/agent-runtime.js';
import { RuntimeUnavailableError } from '../../core/sessions/runtime.js';
import { silentLogger } from '../../lib/log.js';
import { cleanupSessions, testSessions } from '../helpers/sessions.js';
import { crashAfterReadyPreload } from '../helpers/faults.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * server/agent-main.ts as the supervisor runs it (fork with an IPC channel): socket under
 * HACKSTREAM_RUN_DIR/agent (0750), `ready` on the channel, hello/status through the socket,
 * HACKSTREAM_CONTROL_UID deciding who gets in, exit 0 on SIGTERM. Its audit store is
 * unreachable here on purpose: the agent serves without it (and retries).
 */

const ENTRY = join(import.meta.dirname, '../../server/agent-main.ts');
const dirs = scratchDirs('hs-agent-main-');
const sessions = testSessions();
const children: ChildProcess[] = [];

function start(
  env: Record<string, string>,
  preload?: string,
): { child: ChildProcess; socketPath: string; ready: Promise<void>; exited: Promise<number | null>; output: () => string } {
  let stdout = '';
  const dataDir = dirs();
  const runDir = join(dataDir, 'run');
  const configFile = join(dataDir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ sessions, log: { level: 'warn' } }));
  const child = fork(ENTRY, [], {
    execArgv: ['--import', 'tsx', ...(preload ? ['--import', preload] : [])],
    env: {
      PATH: process.env.PATH ?? '',
      HACKSTREAM_CONFIG: configFile,
      HACKSTREAM_DATA_DIR: dataDir,
      HACKSTREAM_RUN_DIR: runDir,
      // Nothing listens on port 1: the audit store stays unavailable.
      HACKSTREAM_DATABASE_URL: `postgres://nobody@127.0.0.1:1/${randomBytes(3).toString('hex')}`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const output = () => stdout;
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'type' in m && m.type === 'ready') resolve();
    });
    void exited.then((code) => reject(new Error(`the agent exited with ${code} before it was ready: ${stderr}`)));
  });
  return { child, socketPath: join(runDir, 'agent', 'agent.sock'), ready, exited, output };
}

describe('server/agent-main.ts (the agent process)', () => {
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await cleanupSessions(sessions);
  });

  it('serves on <runDir>/agent/agent.sock after ready, answers status, exits 0 on SIGTERM', async () => {
    const a = start({});
    await a.ready;
    assert.equal(statSync(join(a.socketPath, '..')).mode & 0o777, 0o750);
    assert.ok(statSync(a.socketPath).isSocket());
    const client = new AgentRuntime({ socketPath: a.socketPath, logger: silentLogger() });
    const status = await client.status();
    assert.equal(status.engineReachable, true);
    assert.equal(status.network.name, sessions.network?.name);
    await client.close();
    a.child.kill('SIGTERM');
    assert.equal(await a.exited, 0);
  });

  it('lets in only HACKSTREAM_CONTROL_UID (root is not implied)', async () => {
    const a = start({ HACKSTREAM_CONTROL_UID: '65534' });
    await a.ready;
    const closedUnanswered = await new Promise<boolean>((resolve) => {
      const s = net.connect(a.socketPath);
      let got = '';
      s.on('connect', () => s.write('{"v":1,"id":1,"method":"hello","params":{}}\n'));
      s.on('data', (d) => (got += d.toString()));
      s.on('error', () => {});
      s.on('close', () => resolve(got === ''));
    });
    assert.ok(closedUnanswered, 'a root peer was refused');
    const client = new AgentRuntime({ socketPath: a.socketPath, logger: silentLogger() });
    await assert.rejects(client.status(), RuntimeUnavailableError);
    await client.close();
    a.child.kill('SIGTERM');
    assert.equal(await a.exited, 0);
  });

  it('an uncaught exception with the store unreachable: a fatal log line, exit 1', async () => {
    const a = start({ HACKSTREAM_LOG_LEVEL: 'info' }, crashAfterReadyPreload(dirs(), 'injected crash'));
    await a.ready;
    assert.equal(await a.exited, 1);
    const fatal = a
      .output()
      .split('\n')
      .filter((l) => l.includes('"level":60'))
      .map((l) => JSON.parse(l) as { msg: string; err: string });
    assert.equal(fatal.length, 1);
    assert.equal(fatal[0]!.msg, 'agent crashed (not recorded in the audit log)');
    assert.equal(fatal[0]!.err, 'injected crash');
  });
});
