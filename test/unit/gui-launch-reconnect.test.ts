import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Dialogs } from '../../client/dialogs.js';
import { connectionStatus, Launcher } from '../../client/gui-launch.js';

describe('the launcher reads the connection from the CLI output', () => {
  const cases: [string, string, 'lost' | 'ok'][] = [
    ['attached, nothing lost', 'Session s is ready; attaching (quality low).\n', 'ok'],
    ['a blip that re-attached at the first try', 'connection lost (xpra exit 1); re-attaching in 0.5 s\nreconnected: re-attaching to session s\n', 'ok'],
    ['the server unreachable', 'connection lost (xpra exit 1); re-attaching in 0.5 s\nreconnecting… cannot reach the server (ENETUNREACH); next try in 1.0 s (giving up in 6 min)\n', 'lost'],
    ['back after an outage', 'reconnecting… cannot reach the server (ENETUNREACH); next try in 1.0 s\nreconnected: re-attaching to session s\nWarning: running as root\n', 'ok'],
    ['lost again later', 'reconnected: re-attaching to session s\nreconnecting… cannot reach the server (ETIMEDOUT); next try in 2.0 s\n', 'lost'],
  ];
  for (const [what, output, want] of cases) it(what, () => assert.equal(connectionStatus(output), want));
});

describe('Launcher', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hs-launch-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('shows "reconnecting" while the child cannot reach the server, and closes it when the browser is back', { timeout: 30_000 }, async () => {
    // A stand-in for bin/hackstream: prints what the CLI prints, one step each time the test says.
    const wrapper = join(dir, 'wrapper');
    const step = (n: number) => writeFileSync(join(dir, `step${n}`), '');
    writeFileSync(
      wrapper,
      `#!/bin/sh
wait_for() { while [ ! -e "${dir}/$1" ]; do sleep 0.05; done; }
echo 'Session s1 is ready; attaching (quality low).' >&2
wait_for step1
echo 'connection lost (xpra exit 1); re-attaching in 0.5 s' >&2
echo 'reconnecting… cannot reach the server (ENETUNREACH); next try in 1.0 s (giving up in 6 min)' >&2
wait_for step2
echo 'reconnected: re-attaching to session s1' >&2
wait_for step3
`,
    );
    chmodSync(wrapper, 0o755);
    const open = new Map<string, boolean>();
    const dialogs: Dialogs = {
      form: () => Promise.reject(new Error('no form expected')),
      message: (_k, title, text) => Promise.reject(new Error(`no message expected: ${title}: ${text}`)),
      question: () => Promise.reject(new Error('no question expected')),
      list: () => Promise.reject(new Error('no list expected')),
      progress: (title) => {
        open.set(title, true);
        return { close: () => open.set(title, false), hidden: new Promise<void>(() => {}) };
      },
    };
    const saved = process.env.HACKSTREAM_WRAPPER;
    process.env.HACKSTREAM_WRAPPER = wrapper;
    const launcher = new Launcher(dialogs);
    try {
      assert.equal(await launcher.start(undefined), 'started');
      assert.equal(open.get('HackStream: starting'), false);
      assert.equal(open.has('HackStream: reconnecting'), false, 'nothing to say while attached');
      const until = async (what: string, ok: () => boolean) => {
        while (!ok()) await new Promise((r) => setTimeout(r, 20));
        return what;
      };
      step(1);
      await until('reconnecting shown', () => open.get('HackStream: reconnecting') === true);
      step(2);
      await until('reconnecting closed', () => open.get('HackStream: reconnecting') === false);
      step(3);
    } finally {
      launcher.detach();
      if (saved === undefined) delete process.env.HACKSTREAM_WRAPPER;
      else process.env.HACKSTREAM_WRAPPER = saved;
    }
  });
});
