// scripts/lib.sh ensure_docker on a host whose dockerd was killed: its pid file stays behind and
// a new dockerd refuses to start while it is there (a fresh-clone CI run failed exactly so).
// Killing the real engine would break every other test on the host, so each case runs in a
// private mount namespace with an empty /run and a FAKE dockerd and docker client on PATH:
// fake-dockerd behaves as the real one does about its pid file and socket, nothing more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { scratchDirs } from '../helpers/tmp.js';

const lib = resolve('scripts/lib.sh');
const dirs = scratchDirs('hs-setup-docker-');

// The real dockerd's checks: a pid file naming a live process stops it; otherwise it writes its
// pid and, after a moment, listens on /var/run/docker.sock. It runs as a bash script named
// `dockerd`, so /proc/PID/comm reads "dockerd" as it does for the real engine.
const fakeDockerd = `#!/bin/bash
echo attempt >> "$FAKE_STARTS"
if [ -n "\${FAKE_FAIL:-}" ]; then echo "$FAKE_FAIL"; exit 1; fi
if [ -f /var/run/docker.pid ]; then
  echo "failed to start daemon: pid file found, ensure docker is not running or delete /var/run/docker.pid"
  exit 1
fi
echo $$ > /var/run/docker.pid
sleep "\${FAKE_DELAY:-0.3}"
python3 -c 'import socket,time; s=socket.socket(socket.AF_UNIX); s.bind("/var/run/docker.sock"); s.listen(); time.sleep(600)' &
wait
`;
// `docker info` answers once the socket exists, as the real client does.
const fakeDocker = `#!/bin/bash
[ "$1" = info ] && [ -S /var/run/docker.sock ]
`;

interface Outcome {
  status: number | null;
  stderr: string;
  /** How many times a dockerd was started, by the case's preparation or by ensure_docker. */
  starts: number;
}

// Runs `prepare; ensure_docker` with /run and /var/log of its own and the fakes first on PATH.
function ensureDocker(prepare: string, env: Record<string, string> = {}): Outcome {
  const dir = dirs();
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const [name, body] of [['dockerd', fakeDockerd], ['docker', fakeDocker]] as const) {
    writeFileSync(join(bin, name), body);
    chmodSync(join(bin, name), 0o755);
  }
  const starts = join(dir, 'starts');
  writeFileSync(starts, '');
  const script = `mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log || exit 99
source ${JSON.stringify(lib)}
${prepare}
ensure_docker`;
  const run = spawnSync('unshare', ['--mount', '--pid', '--fork', '--mount-proc', 'bash', '-c', script], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, FAKE_STARTS: starts, ...env },
  });
  assert.notEqual(run.status, 99, `could not give the case a private /run: ${run.stderr}`);
  return { status: run.status, stderr: run.stderr, starts: readFileSync(starts, 'utf8').split('\n').filter(Boolean).length };
}

test('a pid file left by a killed dockerd is removed and the engine started', () => {
  // A pid no process has: the killed daemon's.
  const out = ensureDocker('sleep 0 & dead=$!; wait $dead; echo $dead > /var/run/docker.pid');
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stderr, /removing a stale \/var\/run\/docker\.pid \(pid \d+ is not a running dockerd\)/);
  assert.equal(out.starts, 1);
});

test('a pid file whose pid now belongs to another program is stale too', () => {
  const out = ensureDocker('sleep 600 & echo $! > /var/run/docker.pid');
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stderr, /removing a stale/);
  assert.equal(out.starts, 1);
});

test('a dockerd still starting up is waited for, not started twice', () => {
  // The first daemon takes 3 s to open its socket; ensure_docker must not start another.
  const out = ensureDocker('FAKE_DELAY=3 setsid dockerd >/dev/null 2>&1 & while [ ! -s /var/run/docker.pid ]; do sleep 0.1; done');
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stderr, /dockerd \(pid \d+\) is running but does not answer yet; waiting for it/);
  assert.equal(out.starts, 1, 'one dockerd only');
});

test('a dockerd that exits at start is reported at once with its log', () => {
  const began = Date.now();
  const out = ensureDocker('', { FAKE_FAIL: 'fatal: bad config' });
  assert.equal(out.status, 1);
  assert.match(out.stderr, /dockerd exited before it answered/);
  assert.match(out.stderr, /fatal: bad config/);
  // Not the 60 s it waits for a daemon that is still running.
  assert.ok(Date.now() - began < 30_000, `took ${Date.now() - began} ms`);
});
