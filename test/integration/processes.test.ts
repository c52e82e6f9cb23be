import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { httpsRequest } from '../helpers/gateway.js';
import { spawnHackstream, waitForLine, type HackstreamProcess } from '../helpers/server-process.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * `npm start` as root: the supervisor runs the agent as root and control and the edge as
 * their own unprivileged users, which can reach neither the Docker engine nor the firewall.
 */

interface Ids {
  uid: number[];
  gid: number[];
  groups: number[];
  capEff: bigint;
}

function ids(pid: number): Ids {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
  const nums = (k: string) => field(k).split(/\s+/).filter(Boolean).map(Number);
  return { uid: nums('Uid'), gid: nums('Gid'), groups: nums('Groups'), capEff: BigInt(`0x${field('CapEff') || '0'}`) };
}

/** Runs a command as uid:gid with no supplementary groups (as the supervisor starts children). */
function runAs(who: { uid: number; gid: number }, cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { uid: who.uid, gid: who.gid, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

function childPid(p: HackstreamProcess, child: string): number {
  const line = p.lines.find((l) => l.includes('"msg":"child ready"') && l.includes(`"child":"${child}"`));
  assert.ok(line, `the supervisor reported ${child} ready`);
  return (JSON.parse(line) as { pid: number }).pid;
}

describe('processes and privileges (npm start as root)', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
  const scratch = scratchDirs('hs-proc-');
  let p: HackstreamProcess;
  let port: number;
  before(async () => {
    const dataDir = scratch();
    p = spawnHackstream({ HACKSTREAM_LISTEN: '127.0.0.1:0', HACKSTREAM_DATA_DIR: dataDir, HACKSTREAM_PUBLIC_HOST: 'hackstream.test', HACKSTREAM_POOL_SIZE: '0' });
    port = (JSON.parse(await waitForLine(p, /"msg":"hackstream listening"/, 120_000)) as { port: number }).port;
    await waitForLine(p, /"msg":"all processes ready"/, 60_000);
    const ca = readFileSync(`${dataDir}/certs/ca.crt`, 'utf8');
    assert.equal((await httpsRequest(port, ca, '/health')).status, 200);
  });
  after(async () => {
    p.child.kill('SIGTERM');
    await p.exit;
  });

  it('runs the agent as root and control and every edge worker as their own non-root users, without capabilities', () => {
    const agent = ids(childPid(p, 'agent'));
    assert.equal(agent.uid[0], 0, 'the agent is the privileged one');
    const control = ids(childPid(p, 'control'));
    const edges = p.lines.filter((l) => l.includes('"msg":"child ready"') && l.includes('"child":"edge"')).map((l) => ids((JSON.parse(l) as { pid: number }).pid));
    assert.ok(edges.length >= 1);
    for (const [name, who] of [['control', control], ...edges.map((e, i) => [`edge ${i + 1}`, e] as const)] as const) {
      assert.ok(who.uid.every((u) => u !== 0), `${name}: real, effective, saved and fs uid are not root (${who.uid.join(' ')})`);
      assert.ok(who.gid.every((g) => g !== 0), `${name}: no root gid (${who.gid.join(' ')})`);
      assert.equal(who.capEff, 0n, `${name}: no effective capabilities`);
    }
    assert.notEqual(control.uid[0], edges[0]!.uid[0], 'control and the edge are different users');
  });

  it('control and the edge can neither open the Docker socket nor read or change the firewall', async () => {
    for (const child of ['control', 'edge']) {
      const who = ids(childPid(p, child));
      const as = { uid: who.uid[0]!, gid: who.gid[0]! };
      const docker = await runAs(as, process.execPath, [
        '-e',
        "require('net').connect('/var/run/docker.sock').on('connect',()=>process.exit(0)).on('error',(e)=>{console.log(e.code);process.exit(3)})",
      ]);
      assert.equal(docker.code, 3, `${child} must not reach the Docker engine: ${docker.out}`);
      assert.match(docker.out, /EACCES|ENOENT/);
      const iptables = await runAs(as, 'iptables', ['-w', '-S', 'INPUT']);
      assert.notEqual(iptables.code, 0, `${child} must not read the firewall: ${iptables.out}`);
      const change = await runAs(as, 'iptables', ['-w', '-I', 'INPUT', '-s', '192.0.2.1', '-j', 'DROP']);
      assert.notEqual(change.code, 0, `${child} must not change the firewall: ${change.out}`);
    }
  });

  it('stops every process on SIGTERM, edge first and the agent after control', async () => {
    p.child.kill('SIGTERM');
    assert.equal(await p.exit, 0);
    const stopped = p.lines.filter((l) => l.includes('"msg":"child stopped"')).map((l) => (JSON.parse(l) as { child: string }).child);
    const last = (name: string) => stopped.lastIndexOf(name);
    assert.ok(last('edge') >= 0 && last('edge') < stopped.indexOf('control'), `order: ${stopped.join(', ')}`);
    assert.ok(stopped.indexOf('control') < stopped.indexOf('agent'), `order: ${stopped.join(', ')}`);
  });
});
