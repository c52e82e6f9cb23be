import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { scratchDirs } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version;
const DEB = `${ROOT}dist/hackstream-client_${VERSION}_all.deb`;
const PKG = 'hackstream-client';
const scratch = scratchDirs('hs-deb-');
const exec = promisify(execFile);
const apt = { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 16 * 1024 * 1024 };

async function installed(): Promise<boolean> {
  return exec('dpkg-query', ['-W', '-f=${Status}', PKG]).then(
    (r) => r.stdout.includes('install ok installed'),
    () => false,
  );
}

/**
 * Debian bookworm's own Node 18 (nodejs + libnode108 and what it loads at start), unpacked
 * into a scratch folder: this machine's nodejs is newer. Returns its root.
 */
async function bookwormNode18(): Promise<string> {
  const policy = async () => /Candidate: (\S+)/.exec((await exec('apt-cache', ['policy', 'libnode108'])).stdout)?.[1];
  let v = await policy();
  if (!v || v === '(none)') {
    await exec('apt-get', ['update'], apt);
    v = await policy();
  }
  assert.ok(v && v !== '(none)', 'libnode108 (bookworm\'s Node 18) is known to apt');
  const dir = scratch();
  await exec('apt-get', ['download', `nodejs=${v}`, `libnode108=${v}`, 'libc-ares2', 'node-cjs-module-lexer', 'node-acorn', 'node-undici'], { ...apt, cwd: dir });
  for (const deb of readdirSync(dir).filter((f) => f.endsWith('.deb'))) await exec('dpkg-deb', ['-x', join(dir, deb), join(dir, 'root')]);
  return join(dir, 'root');
}

/**
 * The installed bundle under that Node 18. It reads its built-in helpers from
 * /usr/share/nodejs, so its /usr/share is bind-mounted over the real one, in a private mount
 * namespace that this command alone sees.
 */
function runOnNode18(root: string, args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = 'mount --bind "$1/usr/share" /usr/share && r=$1 && shift && LD_LIBRARY_PATH="$r/usr/lib/x86_64-linux-gnu" exec "$r/usr/bin/node" /usr/lib/hackstream/hackstream.mjs "$@"';
  return new Promise((resolve) => {
    execFile('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', root, ...args], { cwd: '/', timeout: 30_000, env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config') } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let wasInstalled = false;
let built = '';

before(async () => {
  wasInstalled = await installed();
  const r = await exec('npm', ['run', '--silent', 'package:deb'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  built = r.stderr;
  await exec('apt-get', ['install', '-y', '--no-install-recommends', DEB], apt);
});

after(async () => {
  // Leave the machine as found.
  if (!wasInstalled) await exec('apt-get', ['purge', '-y', PKG], apt);
});

describe('npm run package:deb', () => {
  it('builds the .deb with progress lines, a Node 18 bundle and the package metadata', async () => {
    assert.match(built, /bundling client\/cli\.ts \(version [\d.]+, target node18\)/);
    assert.match(built, /done: dist\/hackstream-client_[\d.]+_all\.deb/);
    const info = (await exec('dpkg-deb', ['-f', DEB, 'Package', 'Version', 'Architecture', 'Depends'])).stdout;
    assert.match(info, /^Package: hackstream-client$/m);
    assert.match(info, new RegExp(`^Version: ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(info, /^Architecture: all$/m);
    assert.match(info, /^Depends: nodejs \(>= 18\), xpra, python3-gi-cairo, yad$/m);
    const files = (await exec('dpkg-deb', ['-c', DEB])).stdout;
    for (const line of files.trim().split('\n')) assert.match(line, / root\/root /, `owned by root: ${line}`);
  });

  it('installs a working hackstream: --version matches package.json, --help lists gui, from any folder and without the checkout', async () => {
    assert.ok(await installed(), 'dpkg says installed');
    const status = (await exec('dpkg', ['-s', PKG])).stdout;
    assert.match(status, /^Depends: nodejs \(>= 18\), xpra, python3-gi-cairo, yad$/m);
    const env = { ...process.env, PATH: '/usr/bin:/bin', NODE_PATH: '' };
    const v = await exec('/usr/bin/hackstream', ['--version'], { cwd: scratch(), env });
    assert.equal(v.stdout, `hackstream ${VERSION}\n`);
    const h = await exec('hackstream', ['--help'], { cwd: '/', env });
    assert.match(h.stdout, /^ {2}gui \[--address IP\]/m);
    const g = await exec('hackstream', ['gui', '--help'], { cwd: '/', env });
    assert.match(g.stdout, /desktop launcher/);
    // The bundle stands alone: no node_modules next to it, no path into this checkout.
    const bundle = readFileSync('/usr/lib/hackstream/hackstream.mjs', 'utf8');
    assert.ok(!bundle.includes(ROOT), 'no path into the checkout');
    assert.ok(!/import\.meta\.(dirname|filename)/.test(bundle), 'nothing newer than Node 18');
    // The attach loop's shell runs the bundle too, and passes the CLI's own exit code on.
    const wrapper = readFileSync('/usr/bin/hackstream', 'utf8');
    assert.match(wrapper, /^cli\(\) \{ node \/usr\/lib\/hackstream\/hackstream\.mjs "\$@"; \}$/m);
    assert.ok(!wrapper.includes('tsx') && !wrapper.includes(ROOT), 'no checkout paths in /usr/bin/hackstream');
    const home = scratch();
    const unconfigured = await exec('hackstream', ['attach', 'x'], { cwd: '/', env: { ...env, HOME: home, XDG_CONFIG_HOME: `${home}/.config` } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(unconfigured.code, 11, unconfigured.stderr);
    assert.match(unconfigured.stderr, /hackstream configure/);
  });

  it('installs the .desktop entry (valid), the icon and sane file modes', async () => {
    const desktop = '/usr/share/applications/hackstream.desktop';
    await exec('desktop-file-validate', [desktop]);
    const entry = readFileSync(desktop, 'utf8');
    assert.match(entry, /^Exec=hackstream gui$/m);
    assert.match(entry, /^Icon=hackstream$/m);
    assert.match(entry, /^Categories=.*Network;.*RemoteAccess;/m);
    const svg = readFileSync('/usr/share/icons/hicolor/scalable/apps/hackstream.svg', 'utf8');
    assert.match(svg, /<svg[^>]+xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    const modes: Array<[string, number]> = [
      ['/usr/bin/hackstream', 0o755],
      ['/usr/lib/hackstream/hackstream.mjs', 0o644],
      ['/usr/lib/hackstream/xpra-warm.py', 0o644],
      [desktop, 0o644],
      ['/usr/share/icons/hicolor/scalable/apps/hackstream.svg', 0o644],
      ['/usr/share/doc/hackstream-client/copyright', 0o644],
      ['/usr/lib/hackstream', 0o755],
    ];
    for (const [file, mode] of modes) {
      const st = statSync(file);
      assert.equal(st.mode & 0o777, mode, `${file} mode`);
      assert.deepEqual([st.uid, st.gid], [0, 0], `${file} owned by root`);
    }
  });

  it('the installed client runs on Debian bookworm\'s own Node 18', { timeout: 120_000 }, async () => {
    const root = await bookwormNode18();
    const home = scratch();
    const version = await runOnNode18(root, ['--version'], home);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, `hackstream ${VERSION}\n`);
    assert.match((await runOnNode18(root, ['--version-check'], home)).stderr, /Unknown option '--version-check'/, 'Node 18 parseArgs');
    const list = await runOnNode18(root, ['list'], home);
    assert.equal(list.code, 11, `not configured: ${list.stderr}`);
    // The TLS client path: connecting, and failing clearly, on Node 18's APIs.
    const conf = await runOnNode18(root, ['configure', '--api-url', 'https://127.0.0.1:1', '--yes'], home);
    assert.equal(conf.code, 3, conf.stderr);
    assert.match(conf.stderr, /cannot reach the server at 127\.0\.0\.1:1/);
  });
});
