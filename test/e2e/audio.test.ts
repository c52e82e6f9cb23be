import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { xpraArgs } from '../../client/attach.js';
import { loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { silentLogger } from '../../lib/log.js';
import { execInContainer } from '../../agent/docker-engine.js';
import { DockerRuntime } from '../../agent/docker-runtime.js';
import { removeSessionNetworkRules, type NetworkOptions } from '../../agent/network.js';
import { LABELS, type RuntimeContainer, type SessionSpec } from '../../core/sessions/runtime.js';
import { startXvfb, until, windowGeometry, X_PATH, xdotool, type Display } from '../helpers/display.js';
import { artifacts, hostAddress, servePage, type PageServer } from '../helpers/e2e.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * Issue 12, task 2: sound from the session to the client, for real. A page this test serves
 * plays a 440 Hz tone (Web Audio oscillator) in the session's Firefox once clicked; PulseAudio
 * runs in the container (policy audio on); the real xpra 3.1 client, on an Xvfb display with
 * the CLI's own command line for `--quality low --audio` (speaker on, opus+ogg), plays into a
 * PulseAudio null sink of the test's own; parecord records the sink's monitor and
 * `sox … stat -freq` finds the tone's frequency. The recordings stay under artifacts/e2e/audio/.
 */

const run = promisify(execFile);
const TITLE = 'HSAudio-Page';
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>${TITLE}</title>
<style>html, body { margin: 0; height: 100%; background: #ff00ff; }</style></head>
<body><script>
  // Firefox lets audio start only after a user gesture: the click the test sends through xpra.
  document.body.addEventListener('click', () => {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 440;
    gain.gain.value = 0.5;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    document.body.style.background = '#00ffff';
    // The context starts once Firefox has opened its audio stream (to the session's PulseAudio).
    const report = () => fetch('/event/state?' + ctx.state);
    ctx.onstatechange = report;
    report();
    ctx.resume();
  }, { once: true });
</script></body></html>`;

const tag = randomBytes(3).toString('hex');
const instanceId = `hs-audio-test-${tag}`;
const hostIp = hostAddress();
// The container may reach the host only at the page server's address.
const network: NetworkOptions = { name: `hs-audio-net-${tag}`, bridge: `hsau${tag}`, allow: [`${hostIp}/32`] };
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const LIMITS = { memoryMb: 1024, cpus: 1, pids: 512 };
const POLICY = { clipboard: true, fileTransfer: false, printing: false, audio: true, webcam: false, downloads: true, fileUrls: false };
const SINK = 'hs_test_sink';

const scratch = scratchDirs('hs-audio-');
const art = artifacts('audio');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The client side's own PulseAudio (a null sink), on a private socket: no host audio needed. */
async function startPulse(dir: string): Promise<{ server: string; proc: ChildProcess; log: () => string }> {
  chmodSync(dir, 0o700);
  const socket = join(dir, 'native');
  let log = '';
  const proc = spawn(
    'pulseaudio',
    ['--daemonize=no', '-n', '--system=false', '--exit-idle-time=-1', '--disallow-exit', '--use-pid-file=no', '--realtime=no', '--high-priority=no',
      `--load=module-null-sink sink_name=${SINK}`, `--load=module-native-protocol-unix socket=${socket} auth-anonymous=1`],
    { env: { ...process.env, PATH: X_PATH, HOME: dir, XDG_RUNTIME_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const server = `unix:${socket}`;
  await until(async () => {
    if (proc.exitCode !== null) throw new Error(`pulseaudio exited (${proc.exitCode}):\n${log}`);
    if (!existsSync(socket)) return undefined;
    const r = await run('pactl', ['list', 'short', 'sinks'], { env: { ...process.env, PATH: X_PATH, PULSE_SERVER: server } }).catch(() => undefined);
    return r?.stdout.includes(SINK) ? true : undefined;
  }, 15_000, 'the test PulseAudio did not come up');
  return { server, proc, log: () => log };
}

interface Analysis {
  rms: number;
  peakHz: number;
}

/** Records the sink's monitor for `seconds`, and what sox finds in it (mono, a middle second). */
async function recordAndAnalyse(pulseServer: string, file: string, seconds = 3): Promise<Analysis> {
  const env = { ...process.env, PATH: X_PATH, PULSE_SERVER: pulseServer };
  // SIGINT: parecord finishes the WAV header.
  await run('timeout', ['-s', 'INT', String(seconds), 'parecord', `--device=${SINK}.monitor`, '--file-format=wav', file], { env }).catch((err: { code?: number }) => {
    if (err.code !== 124) throw err;
  });
  const { stderr: stat } = await run('sox', [file, '-n', 'remix', '-', 'trim', '0.5', '1', 'stat'], { env });
  const rms = Number(/RMS\s+amplitude:\s+([\d.]+)/.exec(stat)?.[1] ?? NaN);
  const { stderr: freq } = await run('sox', [file, '-n', 'remix', '-', 'trim', '0.5', '1', 'stat', '-freq'], { env, maxBuffer: 64 * 1024 * 1024 });
  let peakHz = NaN;
  let peak = -Infinity;
  for (const line of freq.split('\n')) {
    const m = /^\s*([\d.]+)\s+([\d.eE+-]+)\s*$/.exec(line);
    if (!m) continue;
    const hz = Number(m[1]);
    const power = Number(m[2]);
    if (hz >= 50 && power > peak) {
      peak = power;
      peakHz = hz;
    }
  }
  return { rms, peakHz };
}

describe('audio: a 440 Hz tone in the session reaches the client (real xpra, PulseAudio, Firefox)', { timeout: 5 * 60_000 }, () => {
  const runtime = new DockerRuntime({ logger: silentLogger(), instanceId, network, readyTimeoutMs: 90_000 });
  let display: Display;
  let page: PageServer;
  let pulse: Awaited<ReturnType<typeof startPulse>>;
  let caPem = '';
  let spec: SessionSpec;
  let session: RuntimeContainer;
  let client: ChildProcess | undefined;
  let clientLog = '';

  before(async () => {
    display = await startXvfb();
    page = await servePage(PAGE, hostIp);
    pulse = await startPulse(scratch());
    const ca = await loadOrCreateCa(scratch(), silentLogger());
    caPem = ca.certPem;
    await runtime.prepare();
    const sessionId = `${tag}-audio`;
    const key = await generateRsaKey(2048);
    const now = Date.now();
    const certPem = signServerCert(ca, { hostname: `${sessionId}.sessions.test`, publicKeyPem: key.publicKeyPem, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
    spec = { sessionId, userId: 'user-1', limits: LIMITS, policy: POLICY, tls: { certPem, keyPem: key.privateKeyPem }, url: page.url };
    session = await runtime.create(spec);
  });

  after(async () => {
    const parts: [string, () => Promise<unknown>][] = [
      ['client', async () => {
        client?.kill('SIGTERM');
        art.write('xpra-client.log', clientLog);
      }],
      ['session', async () => {
        const mine = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${instanceId}`] } });
        for (const c of mine) {
          const logs = await docker.getContainer(c.Id).logs({ stdout: true, stderr: true, tail: 300 }).catch(() => Buffer.alloc(0));
          art.write('session.log', logs.toString('utf8'));
          await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
        }
      }],
      ['runtime', () => runtime.close()],
      ['network', async () => {
        await docker.getNetwork(network.name!).remove().catch(() => {});
        await removeSessionNetworkRules(network);
      }],
      ['pulse', async () => {
        art.write('pulseaudio.log', pulse?.log() ?? '');
        pulse?.proc.kill('SIGTERM');
      }],
      ['page', async () => page?.close()],
      ['display', async () => display?.close()],
    ];
    for (const [what, part] of parts) await part().catch((err: unknown) => process.stderr.write(`audio cleanup (${what}): ${String(err)}\n`));
  });

  it('with audio on, PulseAudio runs in the session and Firefox is pointed at it', async () => {
    const comms = await execInContainer(docker, session.containerId, ['sh', '-c', 'cat /proc/[0-9]*/comm']);
    assert.ok(comms.output.split('\n').includes('pulseaudio'), comms.output);
    const sinks = await execInContainer(docker, session.containerId, ['sh', '-c', 'PULSE_SERVER=unix:$(ls -d /tmp/hs/run/xpra/pulse-*)/pulse/native pactl list short sinks']);
    assert.match(sinks.output, /Xpra-Speaker/);
  });

  it('the clicked page plays 440 Hz; the client (--quality low --audio) receives it as opus, and sox finds 440 Hz on the sink', async (t) => {
    const token = randomBytes(32).toString('base64url');
    await runtime.allowToken(session.containerId, sha256(token), new Date(Date.now() + 60_000));
    const dir = scratch();
    const files = { ca: join(dir, 'ca.pem'), token: join(dir, 'token') };
    writeFileSync(files.ca, caPem, { mode: 0o600 });
    writeFileSync(files.token, token, { mode: 0o600 });
    assert.ok(session.upstream);
    const connect = { host: session.upstream.host, port: session.upstream.port, sni: `${spec.sessionId}.sessions.test`, token, ca_cert: caPem };
    // The CLI's own command line for `hackstream attach --quality low --audio`.
    const args = xpraArgs(connect, session.upstream.host, files, 'low', true);
    t.diagnostic(`xpra ${args.join(' ')}`);
    client = spawn('xpra', args, { env: { ...process.env, PATH: X_PATH, DISPLAY: display.name, PULSE_SERVER: pulse.server }, stdio: ['ignore', 'pipe', 'pipe'] });
    client.stdout?.on('data', (c: Buffer) => (clientLog += c.toString()));
    client.stderr?.on('data', (c: Buffer) => (clientLog += c.toString()));

    const windowId = await until(async () => {
      if (client?.exitCode !== null) throw new Error(`xpra exited (${client?.exitCode}):\n${clientLog}`);
      return (await xdotool(display, ['search', '--onlyvisible', '--name', TITLE])).split('\n').filter(Boolean).at(-1);
    }, 60_000, `no visible window titled ${TITLE}`);
    // No window manager under Xvfb: focus the xpra window ourselves, then click into the page.
    const w = await windowGeometry(display, windowId);
    await xdotool(display, ['windowfocus', windowId]);
    await xdotool(display, ['mousemove', '--sync', String(w.x + Math.floor(w.width / 2)), String(w.y + Math.floor(w.height / 2)), 'click', '1']);
    // The AudioContext runs: the click counted as a user gesture and Firefox found an audio output.
    await until(async () => (page.hits.some((h) => h.path === '/event/state?running') ? true : undefined), 30_000, 'the page did not report a running AudioContext after the click').catch((err: Error) =>
      assert.fail(`${err.message}; page events: ${page.hits.map((h) => h.path).join(', ')}`),
    );

    let n = 0;
    let last: Analysis | undefined;
    const found = await until(async () => {
      last = await recordAndAnalyse(pulse.server, art.path(`recording-${++n}.wav`));
      return last.rms > 0.01 && Math.abs(last.peakHz - 440) <= 5 ? last : undefined;
    }, 60_000, 'no 440 Hz tone recorded on the client sink').catch((err: Error) => assert.fail(`${err.message}; last: ${JSON.stringify(last)}\n${clientLog.slice(-3000)}`));
    t.diagnostic(`recording ${n}: RMS ${found.rms}, peak ${found.peakHz.toFixed(1)} Hz`);
    assert.match(clientLog, /sound output using 'opus' audio codec/);
    assert.match(clientLog, /sound output using 'ogg' container format/);
  });
});
