import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { lookupUser } from '../../lib/system-user.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * npm run package:server: the server's .deb, inspected with dpkg-deb, its unit checked with
 * systemd-analyze, and the release itself run from a throwaway root (dpkg-deb -x) with the
 * package's own config and unit environment, the embedded store and no Docker engine.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string; devDependencies: Record<string, string> };
const DEB = `${ROOT}dist/hackstream-server_${PKG.version}_amd64.deb`;
const APP = 'usr/lib/hackstream-server';
const UNIT = 'lib/systemd/system/hackstream.service';
const scratch = scratchDirs('hs-server-deb-');
const exec = promisify(execFile);
const big = { maxBuffer: 64 * 1024 * 1024 };

let built = '';
let extracted = '';

before(async () => {
  const r = await exec('npm', ['run', '--silent', 'package:server'], { cwd: ROOT, ...big });
  built = r.stderr;
  extracted = scratch();
  await exec('dpkg-deb', ['-x', DEB, extracted]);
});

/** `KEY=value` from the unit's Environment= lines. */
function unitEnvironment(unit: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) env[m[1]!] = m[2]!;
  return env;
}

function request(port: number, ca: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method, path, ca, servername: 'hackstream.test', agent: false, headers: { host: 'hackstream.test', ...(payload ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const apt = { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, ...big };
/** apt waits for another dpkg run (the client package's test) instead of failing at once. */
const LOCK_WAIT = ['-o', 'DPkg::Lock::Timeout=300'];

async function installed(): Promise<boolean> {
  return exec('dpkg-query', ['-W', '-f=${Status}', 'hackstream-server']).then(
    (r) => r.stdout.includes('install ok installed'),
    () => false,
  );
}

describe('npm run package:server', () => {
  it('builds an amd64 .deb with its dependencies, conffile and root-owned files', async () => {
    assert.match(built, /compiling the server \(tsc -p tsconfig\.build\.json, version [\d.]+\)/);
    assert.match(built, /installing production dependencies \(npm ci --omit=dev, in the staging folder\)/);
    assert.match(built, /done: dist\/hackstream-server_[\d.]+_amd64\.deb/);
    const info = (await exec('dpkg-deb', ['-f', DEB, 'Package', 'Version', 'Architecture', 'Depends'])).stdout;
    assert.match(info, /^Package: hackstream-server$/m);
    assert.match(info, new RegExp(`^Version: ${PKG.version.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(info, /^Architecture: amd64$/m);
    assert.match(info, /^Depends: nodejs \(>= 20\), docker\.io \| docker-ce, iptables, adduser, e2fsprogs$/m);
    const conffiles = (await exec('dpkg-deb', ['--info', DEB, 'conffiles'])).stdout;
    assert.equal(conffiles.trim(), '/etc/hackstream/config.json');
    const scripts = (await exec('dpkg-deb', ['--info', DEB])).stdout;
    for (const s of ['postinst', 'prerm', 'postrm', 'conffiles']) assert.match(scripts, new RegExp(` ${s}\\b`), `control archive has ${s}`);
    const listing = (await exec('dpkg-deb', ['--contents', DEB], big)).stdout.trim().split('\n');
    for (const line of listing) assert.match(line, / root\/root /, `owned by root: ${line}`);
    const entry = (path: string) => listing.find((l) => l.endsWith(` ./${path}`) || l.endsWith(` ./${path}/`));
    assert.match(entry('etc/hackstream/config.json') ?? '', /^-rw-r----- /, 'config 0640 (postinst gives it to group hackstream)');
    assert.match(entry('var/lib/hackstream') ?? '', /^drwxr-x--x /);
    assert.match(entry(UNIT) ?? '', /^-rw-r--r-- /);
    assert.match(entry('usr/sbin/hackstream-admin') ?? '', /^-rwxr-xr-x /);
    assert.ok(entry(`${APP}/dist/server/main.js`), 'the compiled supervisor');
    assert.ok(entry(`${APP}/dist/web/prebuilt/portal.js`), 'the prebuilt portal');
    assert.ok(entry(`${APP}/native/peercred/build/Release/peercred.node`), 'the peer-credential addon');
  });

  it('ships compiled JavaScript and production dependencies only: no TypeScript sources, no devDependencies', async () => {
    const files = (await exec('find', [join(extracted, APP), '-type', 'f'], big)).stdout.trim().split('\n');
    const ts = files.filter((f) => /\.(c|m)?ts$|\.map$/.test(f));
    assert.deepEqual(ts, [], 'no TypeScript sources, declarations or source maps, node_modules included');
    assert.ok(files.some((f) => f.endsWith('/dist/core/certs/acme-source.js')));
    const lock = JSON.parse(readFileSync(join(extracted, APP, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([p, v]) => v.dev && p.startsWith('node_modules/')).map(([p]) => p);
    assert.ok(devOnly.length > 10, 'the lockfile marks the dev tools');
    const present = devOnly.filter((p) => {
      try {
        statSync(join(extracted, APP, p));
        return true;
      } catch {
        return false;
      }
    });
    assert.deepEqual(present, []);
    for (const tool of ['typescript', 'tsx', 'esbuild']) assert.throws(() => statSync(join(extracted, APP, 'node_modules', tool)), tool);
    statSync(join(extracted, APP, 'node_modules/koa')); // a production dependency is there
  });

  it('its systemd unit passes systemd-analyze verify and runs the supervisor as the docs say', async () => {
    const unitFile = join(extracted, UNIT);
    const r = await exec('systemd-analyze', ['verify', unitFile]);
    assert.equal(r.stderr.trim(), '', r.stderr);
    const unit = readFileSync(unitFile, 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/bin\/node \/usr\/lib\/hackstream-server\/dist\/server\/main\.js$/m);
    assert.match(unit, /^KillMode=mixed$/m, 'SIGTERM to the supervisor alone: it drains in order');
    assert.match(unit, /^NoNewPrivileges=yes$/m);
    assert.match(unit, /^RestartPreventExitStatus=78$/m);
    assert.doesNotMatch(unit, /^(ProtectSystem|PrivateTmp|ReadWritePaths)=/m, 'no private mount namespace: dockerd must see the profile mounts');
    const env = unitEnvironment(unit);
    assert.equal(env.HACKSTREAM_CONFIG, '/etc/hackstream/config.json');
    assert.equal(env.HACKSTREAM_ADMIN_PASSWORD_FILE, '/var/lib/hackstream/state/initial-admin-password');
    // A broken unit is caught: the check is not a formality.
    const bad = join(scratch(), 'broken.service');
    writeFileSync(bad, unit.replace(/^ExecStart=\/usr\/bin\/node/m, 'ExecStart=/usr/bin/no-such-node'));
    await assert.rejects(exec('systemd-analyze', ['verify', bad]), /no-such-node/);
  });

  it('the installed release runs without dev tooling: /health, the prebuilt portal, the first admin\'s password in a 0600 file and not in the log', { timeout: 300_000 }, async () => {
    const unit = readFileSync(join(extracted, UNIT), 'utf8');
    const [node, main] = /^ExecStart=(\S+) (\S+)$/m.exec(unit)!.slice(1) as [string, string];
    const data = scratch();
    const config = { ...(JSON.parse(readFileSync(join(extracted, 'etc/hackstream/config.json'), 'utf8')) as Record<string, unknown>) };
    assert.equal(config.dataDir, '/var/lib/hackstream');
    Object.assign(config, { listen: '127.0.0.1:0', dataDir: data, publicHost: 'hackstream.test', sessionDomain: 'sessions.test' });
    const configFile = join(scratch(), 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const passwordFile = join(data, 'state', 'initial-admin-password');
    const env = {
      ...unitEnvironment(unit),
      HACKSTREAM_CONFIG: configFile,
      HACKSTREAM_ADMIN_PASSWORD_FILE: passwordFile,
      // No engine: sessions are not this test's subject, and the shared engine stays untouched.
      HACKSTREAM_DOCKER_HOST: 'unix:///nonexistent/docker.sock',
      HACKSTREAM_POOL_SIZE: '0',
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    };
    const child = spawn(node, [join(extracted, main)], { cwd: data, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let stderr = '';
    createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    after(() => void child.kill('SIGKILL'));
    const port = await new Promise<number>((resolve, reject) => {
      const check = (l: string): void => {
        if (l.includes('"msg":"hackstream listening"')) resolve((JSON.parse(l) as { port: number }).port);
      };
      lines.forEach(check);
      createInterface({ input: child.stdout }).on('line', check);
      void exited.then((c) => reject(new Error(`exited ${c} before listening:\n${stderr}\n${lines.slice(-30).join('\n')}`)));
    });
    const ca = readFileSync(join(data, 'certs/ca.crt'), 'utf8');
    assert.equal((await request(port, ca, 'GET', '/health')).status, 200);
    const portal = await request(port, ca, 'GET', '/assets/portal.js');
    assert.equal(portal.status, 200);
    assert.equal(portal.body, readFileSync(join(extracted, APP, 'dist/web/prebuilt/portal.js'), 'utf8'), 'served from the prebuilt bundle');

    const st = statSync(passwordFile);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, lookupUser('hackstream')?.uid, 'owned by the control user');
    const password = readFileSync(passwordFile, 'utf8').trim();
    assert.match(password, /^[A-Za-z0-9_-]{24}$/);
    const login = await request(port, ca, 'POST', '/v1/login', { username: 'admin', password });
    assert.equal(login.status, 200, login.body);
    assert.ok(lines.some((l) => l.includes('"msg":"first admin created"')));
    assert.match(stderr, new RegExp(`generated password is in ${passwordFile.replace(/[.]/g, '\\.')} \\(mode 0600\\)`));
    assert.ok(!lines.join('\n').includes(password) && !stderr.includes(password), 'the password is in no log line');

    child.kill('SIGTERM');
    assert.equal(await exited, 0, `not a clean stop:\n${lines.filter((l) => /"level":[56]0/.test(l)).join('\n')}`);
  });

  it('installs with apt (the maintainer scripts: users, modes, the conffile), and purge leaves no files of its own', { timeout: 300_000 }, async () => {
    // Left by an interrupted run: start from a machine without it.
    if (await installed()) await exec('apt-get', ['purge', '-y', ...LOCK_WAIT, 'hackstream-server'], apt);
    try {
      // No running systemd here: postinst skips systemctl, as in a container or a chroot.
      await exec('apt-get', ['install', '-y', '--no-install-recommends', ...LOCK_WAIT, DEB], apt);
      assert.ok(await installed());
      const status = (await exec('dpkg', ['-s', 'hackstream-server'])).stdout;
      assert.match(status, /^Conffiles:\n \/etc\/hackstream\/config\.json [0-9a-f]{32}$/m);
      const control = lookupUser('hackstream');
      assert.ok(control && lookupUser('hackstream-edge'), 'both system users exist');
      const mode = (p: string) => {
        const st = statSync(p);
        return [st.mode & 0o7777, st.uid, st.gid];
      };
      assert.deepEqual(mode('/var/lib/hackstream'), [0o751, 0, 0]);
      assert.deepEqual(mode('/etc/hackstream'), [0o750, 0, control.gid]);
      assert.deepEqual(mode('/etc/hackstream/config.json'), [0o640, 0, control.gid]);
      assert.deepEqual(mode('/lib/systemd/system/hackstream.service'), [0o644, 0, 0]);
      const help = await exec('/usr/sbin/hackstream-admin', ['--help'], { cwd: '/', env: { PATH: '/usr/sbin:/usr/bin:/bin' } });
      assert.match(help.stdout, /reset-password <username>/);
      // Installed twice (an upgrade to the same version): postinst runs again and keeps the modes.
      await exec('apt-get', ['install', '-y', '--reinstall', '--no-install-recommends', ...LOCK_WAIT, DEB], apt);
      assert.deepEqual(mode('/etc/hackstream/config.json'), [0o640, 0, control.gid]);
    } finally {
      await exec('apt-get', ['purge', '-y', ...LOCK_WAIT, 'hackstream-server'], apt);
    }
    assert.ok(!(await installed()));
    for (const p of ['/usr/lib/hackstream-server', '/etc/hackstream', '/lib/systemd/system/hackstream.service', '/usr/sbin/hackstream-admin']) {
      assert.ok(!existsSync(p), `${p} removed by purge`);
    }
  });
});
