import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { silentLogger } from '../../lib/log.js';
import { ensureImage } from '../../agent/image.js';
import { loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * The session image (images/firefox-xpra) on the real engine, with the hardening the runtime
 * uses (read-only root, tmpfs /tmp, no capabilities, no-new-privileges, uid 1000, limits, no
 * published ports): readiness, one-time tokens checked by a real xpra 3.1 client over TLS
 * with SNI, hs-token and hs-open, the switches (xpra options, Firefox policies), docker stop.
 * The image is built first when missing (a minute or more, once).
 */

const docker = new Docker();
const suffix = randomBytes(4).toString('hex');
const HOSTNAME = `s-${suffix}.sessions.test`;
const PORT = 14500;
const MB = 1024 * 1024;
const newDir = scratchDirs('hs-image-it-');
const dir = newDir();
const containers: Docker.Container[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in the container (as its user, uid 1000), like the runtime's docker exec. */
async function exec(container: Docker.Container, cmd: string[], env: string[] = []): Promise<Run> {
  const ex = await container.exec({ Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true });
  const stream = await ex.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  docker.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const info = await ex.inspect();
  return { code: info.ExitCode ?? -1, stdout: Buffer.concat(chunks.out).toString(), stderr: Buffer.concat(chunks.err).toString() };
}

/** The host's xpra 3.1 client (never the pyenv python that may come first in PATH). */
function xpra(args: string[]): Promise<Run> {
  const env = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}`, HOME: dir };
  return new Promise((resolve) => {
    execFile('xpra', args, { env, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

interface Started {
  container: Docker.Container;
  ip: string;
  /** Everything the container printed so far (stdout and stderr). */
  output: () => string;
  readyMs: number;
}

/** Creates and starts a hardened session container; resolves at HACKSTREAM-READY or its failure line. */
async function startSession(image: string, env: string[], certPem: string, keyPem: string): Promise<Started> {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const container = await docker.createContainer({
    name: `hs-image-test-${suffix}-${containers.length}`,
    Image: image,
    User: '1000:1000',
    Env: [`HS_TLS_CERT=${b64(certPem)}`, `HS_XPRA_PORT=${PORT}`, ...env],
    // The key goes in on stdin, as the runtime hands it over.
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    Labels: { 'org.hackstream.test': 'image' },
    HostConfig: {
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,mode=1777,size=256m' },
      ShmSize: 128 * MB,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: 1024 * MB,
      PidsLimit: 512,
      Init: true,
    },
  });
  containers.push(container);
  let text = '';
  const t0 = Date.now();
  const stdin = await container.attach({ stream: true, stdin: true, hijack: true });
  await container.start();
  await new Promise<void>((resolve) => stdin.end(keyPem, resolve));
  const logs = await container.logs({ follow: true, stdout: true, stderr: true });
  const out = new PassThrough();
  out.on('data', (c: Buffer) => (text += c.toString()));
  docker.modem.demuxStream(logs, out, out);
  const line = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve('(no HACKSTREAM- line within 70 s)'), 70_000);
    const check = (): void => {
      const m = /^HACKSTREAM-.*$/m.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    };
    out.on('data', check);
    logs.on('end', () => (check(), resolve('(the container exited without a HACKSTREAM- line)')));
  });
  const readyMs = Date.now() - t0;
  (stdin as unknown as { destroy?: () => void }).destroy?.();
  (logs as unknown as { destroy?: () => void }).destroy?.();
  const info = await container.inspect();
  if (line !== 'HACKSTREAM-READY') {
    return { container, ip: '', output: () => `${line}\n${text}`, readyMs };
  }
  const ip = Object.values(info.NetworkSettings.Networks)[0]?.IPAddress ?? '';
  return { container, ip, output: () => text, readyMs };
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const newToken = (): string => randomBytes(32).toString('base64url');

describe('session image', { timeout: 15 * 60_000 }, () => {
  let image = '';
  let caFile = '';
  let certPem = '';
  let keyPem = '';
  let session: Started;

  before(
    async () => {
      image = await ensureImage(docker, { logger: silentLogger() });
      const ca = await loadOrCreateCa(newDir(), silentLogger());
      caFile = join(dir, 'ca.crt');
      writeFileSync(caFile, ca.certPem);
      const key = await generateRsaKey(2048);
      const now = Date.now();
      certPem = signServerCert(ca, {
        hostname: HOSTNAME,
        publicKeyPem: key.publicKeyPem,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 3600_000),
      });
      keyPem = key.privateKeyPem;
      // Not the defaults, so the test sees the switches applied.
      session = await startSession(image, ['HS_CLIPBOARD=0', 'HS_PRINTING=1', 'HS_DOWNLOADS=0', 'HS_FILE_URLS=0'], certPem, keyPem);
    },
    { timeout: 15 * 60_000 },
  );

  after(async () => {
    await Promise.all(containers.map((c) => c.remove({ force: true }).catch(() => {})));
  });

  it('becomes ready (xpra listening, Firefox mapped) under the hardened settings', (t) => {
    assert.ok(session.ip, `not ready: ${session.output()}`);
    t.diagnostic(`docker start to HACKSTREAM-READY: ${session.readyMs} ms`);
    assert.match(session.output(), /^HACKSTREAM-READY$/m);
    assert.equal(session.output().match(/HACKSTREAM-/g)?.length, 1, 'exactly one status line');
  });

  it('has RandR modes for common client screens when ready, none larger than its own (hs-screen-sizes.py)', async () => {
    // xpra 3.1 sleeps 0.5 s after adding a mode for an attaching client's size: these are there before.
    const out = await exec(session.container, ['xrandr']);
    assert.equal(out.code, 0, out.stderr);
    // The output's modes (indented "WxH  rate"), not modes created but left off the output.
    const sizes = [...out.stdout.matchAll(/^ {3}(\d+)x(\d+) +\d/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
    const names = sizes.map(([w, h]) => `${w}x${h}`);
    for (const common of ['1920x1080', '1366x768', '1536x864', '1280x720', '1440x900', '1280x800', '1280x1024', '1024x768', '800x480']) {
      assert.ok(names.includes(common), `${common} missing from ${names.join(' ')}`);
    }
    assert.ok(sizes.every(([w, h]) => w <= 1920 && h <= 1080), `a mode larger than the 1920x1080 screen: ${names.join(' ')}`);
  });

  it('runs as uid 1000 on a read-only root, keeps its secrets in 0600 files and out of the environment', async () => {
    const c = session.container;
    assert.equal((await exec(c, ['id', '-u'])).stdout.trim(), '1000');
    assert.notEqual((await exec(c, ['touch', '/usr/local/bin/x'])).code, 0, 'the root FS is writable');
    const modes = await exec(c, ['stat', '-c', '%a %n', '/tmp/hs', '/tmp/hs/tls.crt', '/tmp/hs/tls.key', '/tmp/hs/tokens']);
    assert.deepEqual(modes.stdout.trim().split('\n'), ['700 /tmp/hs', '600 /tmp/hs/tls.crt', '600 /tmp/hs/tls.key', '600 /tmp/hs/tokens']);
    // xpra and Firefox run without the base64 PEMs in their environment (`docker exec`
    // processes get the container's configured Env, so the patterns are anchored).
    const envs = await exec(c, ['sh', '-c', 'for p in $(pgrep -f "^/usr/bin/python3 /usr/bin/xpra start|^firefox-esr --profile"); do tr "\\0" "\\n" </proc/$p/environ; done']);
    assert.ok(envs.stdout.includes('HOME=/tmp/hs/home'), envs.stderr);
    assert.ok(!envs.stdout.includes('HS_TLS_'), 'HS_TLS_* reached xpra or Firefox');
  });

  describe('one-time tokens with a real xpra client (TLS, SNI, CA checked)', () => {
    const connect = async (token: string): Promise<Run> => {
      const file = join(newDir(), 'password');
      writeFileSync(file, token, { mode: 0o600 });
      return xpra([
        'id',
        `ssl://${session.ip}:${PORT}/`,
        `--ssl-ca-certs=${caFile}`,
        `--ssl-server-hostname=${HOSTNAME}`,
        `--password-file=${file}`,
      ]);
    };
    const addToken = (hash: string, expires: number): Promise<Run> =>
      exec(session.container, ['/usr/local/bin/hs-token', 'add', hash, String(expires)]);
    const inAMinute = (): number => Math.floor(Date.now() / 1000) + 60;

    const valid = newToken();
    const tokens: string[] = [valid];

    it('lets a valid token in once, then never again', async () => {
      assert.equal((await addToken(sha256(valid), inAMinute())).code, 0);
      const first = await connect(valid);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /session-name=HackStream/);
      const again = await connect(valid);
      assert.notEqual(again.code, 0, 'a spent token let a client in');
      const files = await exec(session.container, ['cat', '/tmp/hs/tokens', '/tmp/hs/spent']);
      assert.equal(files.stdout, `${sha256(valid)}\n`, 'the hash left the token file and is recorded as spent');
    });

    const refused: Array<[string, (t: string) => Promise<unknown>]> = [
      ['a token never added', async () => {}],
      [
        'a token whose line has expired',
        // Written directly: hs-token refuses expiries in the past.
        (t) => exec(session.container, ['sh', '-c', `echo "${sha256(t)} ${Math.floor(Date.now() / 1000) - 1}" >> /tmp/hs/tokens`]),
      ],
      ['a wrong token while another one is valid', (t) => addToken(sha256(`${t}x`), inAMinute())],
    ];
    for (const [description, setup] of refused) {
      it(`refuses ${description}`, async () => {
        const token = newToken();
        tokens.push(token);
        await setup(token);
        const run = await connect(token);
        assert.notEqual(run.code, 0, `${description} let a client in`);
        assert.match(run.stdout + run.stderr, /authentication failed/);
      });
    }

    it('never writes a token or its hash to the logs', async () => {
      const logs = (await session.container.logs({ stdout: true, stderr: true })).toString();
      assert.match(logs, /authentication failed/, 'the refusals are logged');
      for (const t of tokens) {
        assert.ok(!logs.includes(t), 'a token is in the logs');
        assert.ok(!logs.includes(sha256(t)), 'a token hash is in the logs');
      }
    });

    const bad: Array<[string, string[], number]> = [
      ['a short hash', ['add', 'abc', '99999999999'], 2],
      ['a non-hex hash', ['add', 'g'.repeat(64), '99999999999'], 2],
      ['a non-integer expiry', ['add', 'a'.repeat(64), '12.5'], 2],
      ['an expiry in the past', ['add', 'a'.repeat(64), '1000'], 3],
      ['a spent hash', ['add', sha256(valid), '99999999999'], 3],
      ['another command', ['del', 'a'.repeat(64)], 2],
    ];
    for (const [description, args, code] of bad) {
      it(`hs-token refuses ${description} (exit ${code})`, async () => {
        const run = await exec(session.container, ['/usr/local/bin/hs-token', ...args]);
        assert.equal(run.code, code, run.stderr);
      });
    }
  });

  describe('hs-open', () => {
    const refused = ['javascript:alert(1)', 'file:///etc/passwd', 'data:text/html,x', 'about:config', 'http://a b', 'ftp://example.org/'];
    for (const url of refused) {
      it(`refuses ${url}`, async () => {
        const run = await exec(session.container, ['/usr/local/bin/hs-open', url]);
        assert.equal(run.code, 2, run.stderr);
      });
    }

    // --notice opens HackStream's own notice page and nothing else.
    const NOTICE = 'file:///usr/share/hackstream/download-refused.html';
    for (const url of ['file:///etc/passwd#x', `${NOTICE}/../../../etc/passwd`, `${NOTICE}#a b`, `${NOTICE}#<script>`, 'http://example.org/']) {
      it(`--notice refuses ${url}`, async () => {
        const run = await exec(session.container, ['/usr/local/bin/hs-open', '--notice', url]);
        assert.equal(run.code, 2, run.stderr);
      });
    }

    it('--notice opens the notice page in the running Firefox', async () => {
      const run = await exec(session.container, ['/usr/local/bin/hs-open', '--notice', `${NOTICE}#reason=off&file=report%20%281%29.bin`]);
      assert.equal(run.code, 0, run.stderr);
    });

    it('opens an http URL in the running Firefox, without a second instance', async () => {
      const run = await exec(session.container, ['/usr/local/bin/hs-open', 'http://127.0.0.1:9/hackstream-test']);
      assert.equal(run.code, 0, run.stderr);
      const mains = await exec(session.container, ['sh', '-c', 'pgrep -a firefox-esr | grep -v -c -- -contentproc']);
      assert.equal(mains.stdout.trim(), '1');
    });
  });

  describe('switches', () => {
    const policiesOf = async (env: string[] = []): Promise<Record<string, unknown>> => {
      const run = env.length
        ? await exec(session.container, ['python3', '/usr/local/lib/hackstream/hs-policies.py'], env)
        : await exec(session.container, ['cat', '/tmp/hs/firefox-policies/policies.json']);
      assert.equal(run.code, 0, run.stderr);
      return (JSON.parse(run.stdout) as { policies: Record<string, unknown> }).policies;
    };

    it('passes clipboard, printing and file transfer to xpra', async () => {
      const cmd = await exec(session.container, ['sh', '-c', 'tr "\\0" " " </proc/$(pgrep -f "^/usr/bin/python3 /usr/bin/xpra start")/cmdline']);
      for (const opt of ['--clipboard=no', '--printing=yes', '--file-transfer=no', '--speaker=disabled', '--webcam=no', '--ssl-auth=hackstream']) {
        assert.ok(cmd.stdout.includes(opt), `${opt} missing from: ${cmd.stdout}`);
      }
    });

    it('writes policies.json as switched (downloads off, file:// blocked but for the notice, printing on)', async () => {
      const p = await policiesOf();
      assert.equal(p.DownloadDirectory, '/tmp/hs/home/Refused-Downloads');
      assert.deepEqual(p.WebsiteFilter, { Block: ['file:///*'], Exceptions: ['file:///usr/share/hackstream/download-refused.html*'] });
      assert.equal(p.PrintingEnabled, true);
      assert.equal(p.DisableTelemetry, true);
      assert.equal(p.DisableAppUpdate, true);
      assert.equal(p.DontCheckDefaultBrowser, true);
      assert.equal(p.OverrideFirstRunPage, '');
    });

    it('switches downloads and file:// the other way', async () => {
      const p = await policiesOf(['HS_DOWNLOADS=1', 'HS_FILE_URLS=1', 'HS_PRINTING=0']);
      assert.equal(p.DownloadDirectory, '/tmp/hs/home/Web-Downloads');
      assert.equal(p.WebsiteFilter, undefined);
      assert.equal(p.PrintingEnabled, false);
    });

    it('fails closed on a malformed switch', async () => {
      const bad = await startSession(image, ['HS_CLIPBOARD=yes'], certPem, keyPem);
      assert.match(bad.output(), /^HACKSTREAM-FAILED bad HS_CLIPBOARD/m);
      const info = await bad.container.wait();
      assert.notEqual((info as { StatusCode: number }).StatusCode, 0);
    });
  });

  it('stops within 3 s of docker stop', async () => {
    const t0 = Date.now();
    await session.container.stop({ t: 10 });
    const ms = Date.now() - t0;
    assert.ok(ms < 3000, `docker stop took ${ms} ms`);
  });
});
