import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { audioOptions } from '../../client/attach.js';
import { EXIT } from '../../client/errors.js';
import { qualityOptions } from '../../client/quality.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { configureAndLogin, spawnCli, type RunningCli } from '../helpers/cli.js';
import { startXvfb, type Display } from '../helpers/display.js';
import { cleanupSessions, testSessions, waitForSession } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

const scratch = scratchDirs('hs-cli-attach-');
const sessions = testSessions();
const USER = { username: 'attach-user', password: 'Attach-User-Password-42' };

let api: TestApi;

/** The command names of a process's children. */
async function childCommands(pid: number): Promise<string[]> {
  const r = await promisify(execFile)('ps', ['--ppid', String(pid), '-o', 'comm=']).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort();
}
let display: Display | undefined;

/** A process's command line, or [] once it is gone. */
const cmdline = (pid: number): string[] => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
};
const childrenOf = (pid: number): number[] =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => {
      try {
        return Number(readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]) === pid;
      } catch {
        return false;
      }
    });
const isWarm = (pid: number) => cmdline(pid).some((a) => a.endsWith('/client/xpra-warm.py'));
const isNode = (pid: number) => /(^|\/)node$/.test(cmdline(pid)[0] ?? '');

/** Polls every 20 ms (a refused launch is over in a second) until `check` returns a value. */
async function poll<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  display = await startXvfb();
  api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions } });
  await api.createUser(USER.username, USER.password);
});

after(async () => {
  await api?.close();
  await cleanupSessions(sessions);
  display?.close();
});

describe('hackstream launch with the real xpra client', () => {
  it('attaches through the gateway, re-attaches by itself when the tunnel is cut, and ends when the session stops', { timeout: 120_000 }, async () => {
    const home = scratch();
    await configureAndLogin(api, USER, home);

    const cli = spawnCli(['launch', 'browser', '--url', 'https://example.org/', '--quality', 'low'], { home, env: { DISPLAY: display!.name } });
    try {
      const token = (await api.login(USER.username, USER.password)).access_token;
      const id = await cli.waitFor(/Session ([0-9a-f-]{36}) is ready/, 60_000);
      const first = await waitForSession(api, token, id, (s) => s.state === 'connected', 45_000);
      assert.ok(!cli.stderr().includes('hst_') && !cli.stdout().includes('hst_'), 'no token printed');
      // While attached only the shell waits on xpra: no Node process stays up (docs/clients.md).
      assert.deepEqual(await childCommands(cli.pid), ['xpra']);

      // Cut the tunnel at the gateway, as a network drop would.
      assert.ok(api.gw.app.gateway.closeTunnels(first.hostname ?? '') >= 1, 'a tunnel was cut');
      await cli.waitFor(/re-attaching/, 30_000);
      await waitForSession(api, token, id, (s) => s.state === 'idle', 15_000).catch(() => undefined);
      await waitForSession(api, token, id, (s) => s.state === 'connected', 45_000);
      assert.deepEqual(await childCommands(cli.pid), ['xpra'], 'the re-attached xpra, again without Node');

      const stop = await api.request('POST', `/v1/sessions/${id}/stop`, { token });
      assert.equal(stop.status, 200, stop.text);
      const code = await cli.exited(30_000);
      // xpra reports a server shutdown as 0 or as a lost connection (then the CLI finds the session gone).
      assert.ok(code === EXIT.OK || code === EXIT.SESSION_GONE, `exit ${code}\n${cli.stderr()}`);
      if (code === EXIT.SESSION_GONE) assert.match(cli.stderr(), /session [0-9a-f-]+ has ended/);
    } finally {
      cli.kill();
    }
  });
});

describe('the warm start: the xpra client loads while the CLI talks to the server (bin/hackstream, client/xpra-warm.py)', () => {
  /** `hackstream launch` (low) from a fresh home: `during` runs while it starts and attaches; then the session is stopped and the CLI ends. */
  async function launchThenStop(during: (cli: RunningCli, attached: () => Promise<void>) => Promise<void>): Promise<void> {
    const home = scratch();
    await configureAndLogin(api, USER, home);
    const cli = spawnCli(['launch', 'browser', '--url', 'https://example.org/', '--quality', 'low'], { home, env: { DISPLAY: display!.name } });
    try {
      const token = (await api.login(USER.username, USER.password)).access_token;
      let id = '';
      await during(cli, async () => {
        id = await cli.waitFor(/Session ([0-9a-f-]{36}) is ready/, 60_000);
        await waitForSession(api, token, id, (s) => s.state === 'connected', 45_000);
      });
      const stop = await api.request('POST', `/v1/sessions/${id}/stop`, { token });
      assert.equal(stop.status, 200, stop.text);
      await cli.exited(30_000);
    } finally {
      cli.kill();
    }
  }

  it('the client process started with the CLI is the one that attaches, named xpra', { timeout: 120_000 }, () =>
    launchThenStop(async (cli, attached) => {
      // Both children at once: the warm client is up while the CLI (Node) still runs.
      const warm = await poll(() => {
        const kids = childrenOf(cli.pid);
        return kids.some(isNode) ? kids.find(isWarm) : undefined;
      }, 30_000, 'no warm xpra client beside the running CLI');
      await attached();
      assert.deepEqual(childrenOf(cli.pid), [warm], 'the attached xpra is the process started with the CLI');
      assert.equal(readFileSync(`/proc/${warm}/comm`, 'utf8').trim(), 'xpra');
      assert.doesNotMatch(cli.stderr(), /Traceback/);
      // The client class was composed from the options: no sound mixin, so PulseAudio was never asked.
      assert.doesNotMatch(cli.stderr(), /pactl/);
    }));

  it("warms up without composing xpra's client class: that waits for the options (no sound mixin without --audio)", { timeout: 60_000 }, async () => {
    const script = fileURLToPath(new URL('../../client/xpra-warm.py', import.meta.url));
    const probe = `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("warm", ${JSON.stringify(script)})
warm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(warm)
warm.preload()
print(json.dumps({m: m in sys.modules for m in ("xpra.scripts.main", "xpra.client.gtk3.client_window", warm.COMPOSES, "xpra.client.mixins.audio")}))`;
    const r = await promisify(execFile)('/usr/bin/python3', ['-c', probe], { env: { ...process.env, PATH: '/usr/bin:/bin', DISPLAY: display!.name, NO_AT_BRIDGE: '1' } });
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}'), {
      'xpra.scripts.main': true,
      'xpra.client.gtk3.client_window': true,
      'xpra.client.ui_client_base': false,
      'xpra.client.mixins.audio': false,
    });
  });

  it('a warm client killed before the hand-over: the wrapper runs xpra itself and attaches', { timeout: 120_000 }, () =>
    launchThenStop(async (cli, attached) => {
      const warm = await poll(() => childrenOf(cli.pid).find(isWarm), 30_000, 'no warm xpra client');
      process.kill(warm, 'SIGKILL');
      await attached();
      const [xpra, ...more] = childrenOf(cli.pid);
      assert.deepEqual(more, []);
      assert.notEqual(xpra, warm);
      assert.deepEqual(cmdline(xpra!).slice(0, 4), ['/usr/bin/python3', '/usr/bin/xpra', 'attach', `ssl://127.0.0.1:${api.port}/`], 'xpra run the usual way');
    }));

  it('a refused launch leaves no warm client behind', { timeout: 60_000 }, async () => {
    const home = scratch();
    await configureAndLogin(api, USER, home);
    const cli = spawnCli(['launch', 'browser', '--url', 'ftp://example.org/'], { home, env: { DISPLAY: display!.name } });
    const warm = await poll(() => childrenOf(cli.pid).find(isWarm), 30_000, 'no warm xpra client');
    assert.equal(await cli.exited(30_000), EXIT.FAILURE, cli.stderr());
    assert.match(cli.stderr(), /url/i);
    assert.ok(!existsSync(`/proc/${warm}`), `the warm client ${warm} is still there: ${cmdline(warm).join(' ')}`);
  });

  it('HACKSTREAM_WARM=no: no warm client, xpra starts after the CLI', { timeout: 60_000 }, async () => {
    const home = scratch();
    await configureAndLogin(api, USER, home);
    const cli = spawnCli(['launch', 'browser', '--url', 'ftp://example.org/'], { home, env: { DISPLAY: display!.name, HACKSTREAM_WARM: 'no' } });
    let seen = false;
    const watch = setInterval(() => (seen ||= childrenOf(cli.pid).some(isWarm)), 20);
    try {
      await poll(() => (childrenOf(cli.pid).some(isNode) ? true : undefined), 30_000, 'no CLI');
      assert.equal(await cli.exited(30_000), EXIT.FAILURE, cli.stderr());
    } finally {
      clearInterval(watch);
    }
    assert.equal(seen, false, 'a warm client was started');
  });
});

describe('the xpra client without --audio', () => {
  /** Runs Debian's xpra client with `options` against a port nobody listens on, with PATH's `pactl` a probe (a FAKE that records its calls). */
  async function pactlCalls(options: string[]): Promise<string> {
    const dir = scratch();
    const calls = join(dir, 'calls');
    writeFileSync(join(dir, 'pactl'), `#!/bin/sh\necho "$*" >>'${calls}'\nexit 1\n`);
    chmodSync(join(dir, 'pactl'), 0o755);
    const child = spawn('/usr/bin/xpra', ['attach', 'tcp://127.0.0.1:9/', ...options], { env: { ...process.env, PATH: `${dir}:/usr/bin:/bin`, DISPLAY: display!.name }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      // Everything the client loads comes before its first try to connect.
      await poll(() => (/failed to connect to 127\.0\.0\.1:9/.test(out) ? true : undefined), 60_000, `xpra did not try to connect:\n${out}`);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    return existsSync(calls) ? readFileSync(calls, 'utf8') : '';
  }

  it('does not load its sound subsystem (it never asks PulseAudio); with --audio it does', { timeout: 150_000 }, async () => {
    assert.equal(await pactlCalls([...qualityOptions('low'), ...audioOptions(false)]), '', 'pactl was run without --audio');
    assert.match(await pactlCalls([...qualityOptions('low'), ...audioOptions(true)]), /info/, 'the probe saw no call with --audio: it would prove nothing');
  });
});
