import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import { CONTROL_USER, EDGE_USER, ensureSystemUser, prepareDataDir } from '../../server/supervisor-privileges.js';

/*
 * What the supervisor prepares as root before it starts the children: the two system users,
 * and a data dir each process can reach exactly as far as docs/processes.md says.
 */

/** A Unix socket server made the way control makes its sockets; prints a line once listening. */
const LISTEN = `const net = require('node:net'), fs = require('node:fs'); const p = process.argv[1];
net.createServer((s) => s.end()).listen(p, () => { fs.chmodSync(p, 0o660); console.log('listening'); });`;
/** Prints "connected" or the error code. */
const CONNECT = `require('node:net').connect(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0); })
.on('error', (e) => { console.log(e.code); process.exit(0); });`;

/** Whether `user` can list `dir` (needs search and read: what connecting and opening need). */
function canEnter(user: string, dir: string): boolean {
  return spawnSync('runuser', ['-u', user, '--', 'ls', dir], { stdio: 'ignore' }).status === 0;
}

function canWrite(user: string, dir: string): boolean {
  return spawnSync('runuser', ['-u', user, '--', 'touch', join(dir, `probe-${user}`)], { stdio: 'ignore' }).status === 0;
}

describe('supervisor privileges (as root)', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hs-sup-priv-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('creates the system users once, with no login shell', () => {
    const control = ensureSystemUser(CONTROL_USER, silentLogger());
    const edge = ensureSystemUser(EDGE_USER, silentLogger());
    assert.notEqual(control.uid, 0);
    assert.notEqual(edge.uid, 0);
    assert.notEqual(control.uid, edge.uid);
    assert.deepEqual(ensureSystemUser(CONTROL_USER, silentLogger()), control, 'a second call finds the same user');
    const entry = spawnSync('getent', ['passwd', EDGE_USER], { encoding: 'utf8' }).stdout.trim();
    assert.match(entry, /:\/usr\/sbin\/nologin$/);
  });

  it('lays out run/ so the edge reaches only control, control reaches the agent, and control owns certs/ and state/', () => {
    const control = ensureSystemUser(CONTROL_USER, silentLogger());
    const edge = ensureSystemUser(EDGE_USER, silentLogger());
    // What an all-in-one root process left: a root-owned key, and a link an attacker could plant.
    mkdirSync(join(dataDir, 'certs'), { mode: 0o700 });
    writeFileSync(join(dataDir, 'certs/ca.key'), 'key', { mode: 0o600 });
    const outside = join(dataDir, 'outside');
    writeFileSync(outside, 'root only', { mode: 0o600 });
    mkdirSync(join(dataDir, 'state'), { mode: 0o700 });
    symlinkSync(outside, join(dataDir, 'state/link'));
    assert.equal(statSync(dataDir).mode & 0o777, 0o700, 'mkdtemp made it 0700');

    const { runDir } = prepareDataDir(dataDir, { control, edge }, silentLogger());
    assert.equal(runDir, join(dataDir, 'run'));
    assert.equal(statSync(dataDir).mode & 0o777, 0o711, 'traversable, not listable');
    const expect = (path: string, mode: number, uid: number, gid: number) => {
      const st = statSync(path);
      assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [mode, uid, gid], path);
    };
    expect(runDir, 0o755, 0, 0);
    expect(join(runDir, 'control'), 0o750, control.uid, edge.gid);
    expect(join(runDir, 'agent'), 0o750, 0, control.gid);
    assert.equal(statSync(join(runDir, 'control')).mode & 0o7777, 0o2750, 'setgid: what control makes there is the edge group\'s');
    expect(join(dataDir, 'certs/ca.key'), 0o600, control.uid, control.gid);
    expect(join(dataDir, 'state'), 0o700, control.uid, control.gid);
    expect(join(dataDir, 'plugin-data'), 0o700, control.uid, control.gid);
    expect(outside, 0o600, 0, 0);
    assert.equal(lstatSync(join(dataDir, 'state/link')).uid, 0, 'the link is left alone, not followed');

    assert.ok(canEnter(EDGE_USER, join(runDir, 'control')), 'the edge reaches control');
    assert.ok(!canEnter(EDGE_USER, join(runDir, 'agent')), 'the edge cannot reach the agent');
    assert.ok(!canEnter(EDGE_USER, join(dataDir, 'certs')), 'the edge cannot read the CA key');
    assert.ok(canEnter(CONTROL_USER, join(runDir, 'agent')), 'control reaches the agent');
    assert.ok(canWrite(CONTROL_USER, join(runDir, 'control')), 'control makes its sockets');
    assert.ok(!canWrite(CONTROL_USER, join(runDir, 'agent')), 'control cannot replace the agent socket');
    assert.ok(!canWrite(EDGE_USER, join(runDir, 'control')), 'the edge cannot replace control sockets');
    assert.ok(canWrite(CONTROL_USER, join(dataDir, 'state')));
    assert.ok(canWrite(CONTROL_USER, join(dataDir, 'plugin-data')), 'control makes the plugins\' private folders');
    assert.ok(!canEnter(EDGE_USER, join(dataDir, 'plugin-data')), 'the edge cannot read plugin keys');
  });

  it("lets the edge connect to a 0660 socket control makes in run/control/, and nobody else", async () => {
    const control = ensureSystemUser(CONTROL_USER, silentLogger());
    const edge = ensureSystemUser(EDGE_USER, silentLogger());
    const dir = mkdtempSync(join(tmpdir(), 'hs-sup-sock-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const { runDir } = prepareDataDir(dir, { control, edge }, silentLogger());
    const path = join(runDir, 'control', 'api.sock');
    // As control does it: its own uid and group only, then chmod 0660.
    const server = spawn('setpriv', [`--reuid=${control.uid}`, `--regid=${control.gid}`, '--clear-groups', process.execPath, '-e', LISTEN, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    after(() => server.kill());
    await new Promise<void>((resolve, reject) => {
      server.stdout.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`the socket server exited with ${code}`)));
    });
    assert.equal(statSync(path).gid, edge.gid, 'the socket has the directory group');
    const nobody = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).stdout.split(':');
    const table = [
      { who: 'hackstream-edge', uid: edge.uid, gid: edge.gid, expect: 'connected' },
      { who: 'nobody', uid: Number(nobody[2]), gid: Number(nobody[3]), expect: 'EACCES' },
    ];
    for (const t of table) {
      const r = spawnSync('setpriv', [`--reuid=${t.uid}`, `--regid=${t.gid}`, '--clear-groups', process.execPath, '-e', CONNECT, path], { encoding: 'utf8' });
      assert.equal(r.stdout.trim(), t.expect, t.who);
    }
  });

  it('takes over again at the next start (ownership and modes are set every time)', () => {
    const control = ensureSystemUser(CONTROL_USER, silentLogger());
    const edge = ensureSystemUser(EDGE_USER, silentLogger());
    chmodSync(join(dataDir, 'run/agent'), 0o777);
    writeFileSync(join(dataDir, 'state/new-by-root'), '');
    prepareDataDir(dataDir, { control, edge }, silentLogger());
    assert.equal(statSync(join(dataDir, 'run/agent')).mode & 0o777, 0o750);
    assert.equal(statSync(join(dataDir, 'state/new-by-root')).uid, control.uid);
  });
});
