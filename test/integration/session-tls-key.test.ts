import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { loadOrCreateCa, signServerCert } from '../../core/certs/ca.js';
import { generateRsaKey } from '../../core/certs/keys.js';
import { silentLogger } from '../../lib/log.js';
import { execInContainer } from '../../agent/docker-engine.js';
import { DockerRuntime } from '../../agent/docker-runtime.js';
import { removeSessionNetworkRules, type NetworkOptions } from '../../agent/network.js';
import { LABELS, type RuntimeContainer, type SessionSpec } from '../../core/sessions/runtime.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * Issue 12, task 1: the session's TLS key reaches the container on its stdin, never in its
 * config. Real engine, real session image: `docker inspect` and the engine's own files for
 * the container hold no key material (a session and a pool container), the key file inside
 * is 0600 on the tmpfs, and a TLS handshake with the session's xpra verifies against the CA.
 */

const tag = randomBytes(3).toString('hex');
const instanceId = `hs-key-test-${tag}`;
const network: NetworkOptions = { name: `hs-key-net-${tag}`, bridge: `hsky${tag}`, allow: [] };
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const SESSION_DOMAIN = 'sessions.test';
const LIMITS = { memoryMb: 1024, cpus: 1, pids: 256 };
const POLICY = { clipboard: true, fileTransfer: false, printing: false, audio: false, webcam: false, downloads: true, fileUrls: false };

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** Every form in which the key could leak: the PEM, its body lines, its base64, its DER. */
function keyForms(keyPem: string): string[] {
  const body = keyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
  const der = Buffer.from(body.join(''), 'base64');
  return [keyPem, Buffer.from(keyPem).toString('base64'), ...body.filter((l) => l.length >= 32), der.toString('hex'), 'PRIVATE KEY'];
}

function leaks(text: string, keyPem: string): string[] {
  return keyForms(keyPem).filter((f) => text.includes(f) || text.includes(JSON.stringify(f).slice(1, -1)));
}

/** Completes a TLS handshake verifying the server against `ca` for `servername`; resolves its certificate's fingerprint. */
function tlsHandshake(up: { host: string; port: number }, servername: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: up.host, port: up.port, servername, ca, timeout: 10_000 });
    s.once('secureConnect', () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('timeout', () => s.destroy(new Error('TLS handshake timed out')));
    s.once('error', reject);
  });
}

describe('the session TLS key travels on stdin, not in the container config (real engine and image)', () => {
  const runtime = new DockerRuntime({ logger: silentLogger(), instanceId, network, readyTimeoutMs: 90_000 });
  const dirs = scratchDirs('hs-key-');
  let caPem = '';
  let issue: (hostname: string) => Promise<{ certPem: string; keyPem: string }>;

  async function spec(overrides: Partial<SessionSpec> = {}): Promise<SessionSpec> {
    const sessionId = overrides.sessionId ?? `${tag}-${randomBytes(4).toString('hex')}`;
    return { sessionId, userId: 'user-1', limits: LIMITS, policy: POLICY, tls: await issue(`${sessionId}.${SESSION_DOMAIN}`), ...overrides };
  }

  before(async () => {
    const ca = await loadOrCreateCa(dirs(), silentLogger());
    caPem = ca.certPem;
    issue = async (hostname) => {
      const key = await generateRsaKey(2048);
      const now = Date.now();
      const certPem = signServerCert(ca, { hostname, publicKeyPem: key.publicKeyPem, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
      return { certPem, keyPem: key.privateKeyPem };
    };
    await runtime.prepare();
  });

  after(async () => {
    await runtime.close();
    const mine = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${instanceId}`] } });
    for (const c of mine) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    await docker.getNetwork(network.name!).remove().catch(() => {});
    await removeSessionNetworkRules(network);
  });

  const cases: { description: string; pooled: boolean }[] = [
    { description: 'a user session', pooled: false },
    { description: 'a pool container', pooled: true },
  ];
  for (const c of cases) {
    describe(c.description, () => {
      let s: SessionSpec;
      let container: RuntimeContainer;

      before(async () => {
        const base = await spec();
        // A pool container has no owner yet.
        s = c.pooled ? { sessionId: base.sessionId, limits: base.limits, policy: base.policy, tls: base.tls, pooled: true } : base;
        container = await runtime.create(s);
      });

      it('docker inspect shows no key material anywhere (Env, Cmd, Labels, Mounts, …)', async () => {
        const info = await docker.getContainer(container.containerId).inspect();
        assert.equal(info.State.Running, true);
        assert.equal(info.Config.OpenStdin, true);
        assert.equal(info.Config.StdinOnce, true);
        assert.ok(!(info.Config.Env ?? []).some((e) => e.startsWith('HS_TLS_KEY=')), 'no HS_TLS_KEY in Env');
        for (const [part, value] of Object.entries({ Env: info.Config.Env, Cmd: info.Config.Cmd, Entrypoint: info.Config.Entrypoint, Labels: info.Config.Labels, Mounts: info.Mounts, whole: info })) {
          assert.deepEqual(leaks(JSON.stringify(value ?? null), s.tls.keyPem), [], `key material in ${part}`);
        }
      });

      it("the engine's files for the container hold no key material", async () => {
        const root = (await docker.info()).DockerRootDir as string;
        const dir = join(root, 'containers', container.containerId);
        for (const file of ['config.v2.json', 'hostconfig.json', `${container.containerId}-json.log`]) {
          let text: string;
          try {
            text = readFileSync(join(dir, file), 'utf8');
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT' && file.endsWith('.log')) continue;
            throw err;
          }
          assert.deepEqual(leaks(text, s.tls.keyPem), [], `key material in ${file}`);
        }
      });

      it('inside, the key is the one handed over, 0600 and owned by uid 1000, on the tmpfs; no process has it in its environment', async () => {
        const run = async (cmd: string[]) => {
          const r = await execInContainer(docker, container.containerId, cmd);
          assert.equal(r.exitCode, 0, `${cmd.join(' ')}: ${r.output}`);
          return r.output.trim();
        };
        assert.equal(await run(['stat', '-c', '%a %u %F', '/tmp/hs/tls.key']), '600 1000 regular file');
        assert.equal(await run(['stat', '-f', '-c', '%T', '/tmp/hs/tls.key']), 'tmpfs');
        assert.equal((await run(['sha256sum', '/tmp/hs/tls.key'])).split(' ')[0], sha256(s.tls.keyPem));
        // Read as root: uid 1000's processes and the ones it cannot read alike.
        const environs = await execInContainer(docker, container.containerId, ['sh', '-c', 'cat /proc/[0-9]*/environ | tr "\\0" "\\n"'], { user: '0' });
        assert.ok(environs.output.includes('HS_XPRA_PORT='), 'the environments were read');
        // (HS_TLS_CERT, public, stays in PID 1's environment as Docker set it.)
        assert.ok(!environs.output.includes('HS_TLS_KEY'), 'HS_TLS_KEY reached a process environment');
        assert.deepEqual(leaks(environs.output, s.tls.keyPem), []);
        // With audio off no sound process runs (idle memory does not grow).
        const comms = await run(['sh', '-c', 'cat /proc/[0-9]*/comm']);
        assert.ok(comms.split('\n').includes('Xvfb'), comms);
        assert.ok(!/pulseaudio|_sound_record/.test(comms), `a sound process runs with audio off:\n${comms}`);
      });

      it("a TLS handshake with the session's xpra verifies against the session CA and presents the session's certificate", async () => {
        assert.ok(container.upstream);
        const fp = await tlsHandshake(container.upstream, `${s.sessionId}.${SESSION_DOMAIN}`, caPem);
        assert.equal(fp, new X509Certificate(s.tls.certPem).fingerprint256);
        await assert.rejects(tlsHandshake(container.upstream, `other.${SESSION_DOMAIN}`, caPem), /altnames|Hostname/i);
      });
    });
  }
});
