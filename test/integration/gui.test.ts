import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startApi, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { cleanupSessions, testSessions, waitForSession } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const scratch = scratchDirs('hs-gui-');
const sessions = testSessions();
const USER = { username: 'gui-user', password: 'Gui-User-Password-42' };
const exec = promisify(execFile);

let api: TestApi;
/** What configure may pin: the API certificate's SHA-256 or its CA's (see docs/clients.md). */
let presented: string[] = [];
let xvfb: ChildProcess | undefined;
let display = '';
const home = scratch();
const configDir = join(home, '.config', 'hackstream');

/**
 * An X server of our own on a free display number (above the other tests' range); it must
 * still run once its socket is there, or another server took the number first.
 */
async function startXvfb(): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    let n = 400 + Math.floor(Math.random() * 500);
    while (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) n++;
    // -noreset: between two dialogs no client may be connected, and a server resetting then refuses the next one.
    const x = spawn('Xvfb', [`:${n}`, '-screen', '0', '1280x800x24', '-nolisten', 'tcp', '-noreset'], { stdio: 'ignore' });
    const end = Date.now() + 10_000;
    while (!existsSync(`/tmp/.X11-unix/X${n}`) && x.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 300));
    if (x.exitCode === null && existsSync(`/tmp/.X11-unix/X${n}`)) {
      xvfb = x;
      display = `:${n}`;
      return;
    }
    x.kill('SIGKILL');
  }
  throw new Error('Xvfb did not start');
}

const xdo = async (...args: string[]): Promise<string> => (await exec('xdotool', args, { env: { ...process.env, DISPLAY: display } })).stdout.trim();

interface Window {
  id: string;
  pid: number;
  /** yad's command line: what the window shows. */
  args: string[];
}

const cmdline = (pid: number | string): string[] => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
};

/** The visible window titled exactly `title` (optionally not the one of `notPid`), with yad's arguments. */
async function waitWindow(title: string, ms = 20_000, notPid?: number): Promise<Window> {
  const end = Date.now() + ms;
  const re = `^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
  for (;;) {
    const ids = (await xdo('search', '--onlyvisible', '--name', re).catch(() => '')).split('\n').filter(Boolean);
    for (const id of ids) {
      const pid = Number(await xdo('getwindowpid', id).catch(() => '0'));
      const args = cmdline(pid);
      // Only yad's windows: xpra's may carry the same title.
      if (pid > 0 && pid !== notPid && args[0]?.endsWith('yad')) {
        await new Promise((r) => setTimeout(r, 300)); // let GTK finish mapping before input
        return { id, pid, args };
      }
    }
    if (Date.now() > end) {
      const open = readdirSync('/proc').filter((p) => cmdline(p)[0]?.endsWith('yad')).map((p) => cmdline(p).filter((a) => a.startsWith('--title=') || a.startsWith('--text=')).join(' '));
      throw new Error(`no window "${title}" within ${ms} ms; yad windows: ${open.join(', ') || 'none'}; the launcher said:\n${guiErr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

const textOf = (w: Window): string => w.args.find((a) => a.startsWith('--text='))?.slice('--text='.length) ?? '';

/** Focus the window, then keys and text in order: `{key}` presses a key, anything else is typed. */
async function drive(w: Window, ...steps: string[]): Promise<void> {
  await xdo('windowfocus', '--sync', w.id);
  for (const s of steps) {
    const key = /^\{(.+)\}$/.exec(s);
    if (key) await xdo('key', '--clearmodifiers', key[1]!);
    else await xdo('type', '--delay', '10', s);
  }
}

/** Still on screen: yad alive and its window mapped. */
async function isOpen(w: Window): Promise<boolean> {
  if (!existsSync(`/proc/${w.pid}`) || cmdline(w.pid)[0]?.endsWith('yad') !== true) return false;
  const visible = await xdo('search', '--onlyvisible', '--pid', String(w.pid), '--name', '.').catch(() => '');
  return visible.split('\n').includes(w.id);
}

/** Presses `key` in the window and waits until it has closed. */
async function press(w: Window, key: string, ms = 10_000): Promise<void> {
  await drive(w, `{${key}}`);
  for (const stop = Date.now() + ms; await isOpen(w); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > stop) throw new Error(`window ${w.args[1] ?? ''} did not close on ${key}`);
  }
}

/** The session the launch test started (the Sessions test resumes and stops it). */
const launched: { id?: string } = {};
let gui: ChildProcess | undefined;
let guiErr = '';
let guiExit: Promise<number | null> = Promise.resolve(null);

function startGui(): void {
  guiErr = '';
  // Through bin/hackstream, as the .desktop entry runs /usr/bin/hackstream.
  gui = spawn(`${ROOT}bin/hackstream`, ['gui', '--address', '127.0.0.1'], {
    cwd: home,
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), DISPLAY: display },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  gui.stderr?.on('data', (c: Buffer) => (guiErr += c.toString()));
  const child = gui;
  guiExit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

async function guiExited(ms = 10_000): Promise<number | null> {
  return Promise.race([guiExit, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the launcher did not exit:\n${guiErr}`)), ms))]);
}

/** Every process's command line, and every file under the home (but `allowed`): where a secret must not be. */
function assertNowhere(secret: string, what: string, allowed?: string): void {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    assert.ok(!cmdline(pid).join(' ').includes(secret), `${what} in the command line of process ${pid}`);
  }
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && p !== allowed) assert.ok(!readFileSync(p, 'utf8').includes(secret), `${what} in ${p}`);
    }
  };
  walk(home);
  assert.ok(!guiErr.includes(secret), `${what} in the launcher's output`);
}

/** Launched or resumed browsers (`hackstream launch`/`attach` children of the launcher) that outlived it. */
function launchedChildren(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => {
      const args = cmdline(pid);
      if (!(args.includes('launch') || args.includes('attach')) || !args.some((a) => a.endsWith('client/cli.ts') || a.endsWith('bin/hackstream'))) return false;
      try {
        return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`HOME=${home}`);
      } catch {
        return false;
      }
    });
}

before(async () => {
  await startXvfb();
  api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions } });
  presented = ['api.crt', 'ca.crt'].map((f) => new X509Certificate(readFileSync(join(api.dataDir, 'certs', f))).fingerprint256);
  await api.createUser(USER.username, USER.password, { quota: { max_sessions: 1 } });
});

after(async () => {
  gui?.kill('SIGTERM');
  for (const pid of launchedChildren()) process.kill(pid, 'SIGTERM');
  await api?.close();
  await cleanupSessions(sessions);
  xvfb?.kill('SIGTERM');
});

describe('hackstream gui (real yad under Xvfb, driven with xdotool)', () => {
  const serverUrl = () => `https://${PUBLIC_HOST}:${api.port}`;

  it('first run: unreachable and wrong password show an error and return to the form; the certificate is shown and pinned; the login stores tokens 0600', { timeout: 120_000 }, async () => {
    startGui();
    let form = await waitWindow('HackStream: sign in');
    assert.ok(!form.args.some((a) => a.includes(USER.password)));
    await drive(form, `https://${PUBLIC_HOST}:1`, '{Tab}', USER.username, '{Tab}', USER.password);
    await press(form, 'Return');
    let error = await waitWindow('HackStream: error');
    assert.match(textOf(error), /cannot reach the server/);
    await press(error, 'Return');

    // Back to the form with what was typed (except the password).
    form = await waitWindow('HackStream: sign in', 20_000, form.pid);
    assert.ok(form.args.includes(`https://${PUBLIC_HOST}:1`) && form.args.includes(USER.username), form.args.join(' '));
    await drive(form, serverUrl(), '{Tab}', '{Tab}', 'not-the-password');
    await press(form, 'Return');
    const trust = await waitWindow('HackStream: trust this server?');
    assert.doesNotMatch(textOf(trust), /WARNING/);
    assert.ok(!existsSync(join(configDir, 'config.json')), 'nothing pinned before the answer');
    await press(trust, 'alt+t');
    error = await waitWindow('HackStream: error', 20_000, error.pid);
    assert.match(textOf(error), /wrong username or password/);
    const pinned = JSON.parse(readFileSync(join(configDir, 'config.json'), 'utf8')) as { api_url: string; fingerprint: string; address?: string };
    assert.deepEqual(pinned, { api_url: serverUrl(), fingerprint: pinned.fingerprint, address: '127.0.0.1' });
    assert.ok(presented.includes(pinned.fingerprint), `pinned one of the server's certificates: ${pinned.fingerprint}`);
    assert.ok(textOf(trust).includes(pinned.fingerprint), `the pinned fingerprint was shown: ${textOf(trust)}`);
    assert.ok(!existsSync(join(configDir, 'tokens.json')), 'no tokens after a wrong password');
    await press(error, 'Return');

    // The pinned server is not asked about again.
    form = await waitWindow('HackStream: sign in', 20_000, form.pid);
    await drive(form, '{Tab}', '{Tab}', USER.password);
    await press(form, 'Return');
    const main = await waitWindow('HackStream', 20_000);
    assert.match(textOf(main), new RegExp(`Signed in as ${USER.username} on ${PUBLIC_HOST}:${api.port}`));
    assert.equal(statSync(join(configDir, 'tokens.json')).mode & 0o777, 0o600);
    const tokens = JSON.parse(readFileSync(join(configDir, 'tokens.json'), 'utf8')) as { accessToken: string; refreshToken: string; username: string };
    assert.equal(tokens.username, USER.username);
    assertNowhere(USER.password, 'the password');
    assertNowhere(tokens.refreshToken, 'the refresh token', join(configDir, 'tokens.json'));
  });

  it('Launch Browser starts a session for the typed URL and attaches; a failure (quota) is shown; the browser outlives the launcher', { timeout: 180_000 }, async () => {
    const token = (await api.login(USER.username, USER.password)).access_token;
    let main = await waitWindow('HackStream');
    await drive(main, 'example.org/from-gui');
    await press(main, 'alt+l');
    await waitWindow('HackStream: starting', 20_000);
    let id = '';
    const end = Date.now() + 90_000;
    while (!id) {
      const r = await api.request('GET', '/v1/sessions', { token });
      const items = (r.json as { items: Array<{ session_id: string; url: string | null }> }).items;
      id = items.find((s) => s.url === 'https://example.org/from-gui')?.session_id ?? '';
      if (!id && Date.now() > end) throw new Error(`no session for the URL: ${r.text}\n${guiErr}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await waitForSession(api, token, id, (s) => s.state === 'connected', 60_000);
    const recent = join(configDir, 'recent.json');
    assert.equal(statSync(recent).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(recent, 'utf8')), { urls: ['https://example.org/from-gui'] });
    // While the browser is shown only bin/hackstream's shell waits (on xpra), no Node process.
    const children = launchedChildren();
    assert.equal(children.length, 1, `one hackstream launch process: ${children.map((p) => cmdline(p).join(' ')).join('; ')}`);
    assert.deepEqual(cmdline(children[0]!).slice(1), [`${ROOT}bin/hackstream`, 'launch', 'browser', '--url', 'https://example.org/from-gui']);
    assert.ok(!cmdline(children[0]!).some((a) => a.includes(USER.password) || a.includes('hst_')), 'nothing secret on its command line');

    // Back in the window, with the URL first in the list; quota 1: a second launch fails with a dialog.
    main = await waitWindow('HackStream', 20_000, main.pid);
    assert.ok(main.args.at(-1)?.startsWith('https://example.org/from-gui'), main.args.join(' '));
    await press(main, 'alt+l');
    const error = await waitWindow('HackStream: error', 60_000);
    assert.match(textOf(error), /quota reached/);
    await press(error, 'Return');

    main = await waitWindow('HackStream', 20_000, main.pid);
    await press(main, 'alt+q');
    assert.equal(await guiExited(), 0);
    // Detached: the browser session is still attached after the launcher quit.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(launchedChildren(), children);
    assert.equal((await waitForSession(api, token, id, () => true)).state, 'connected');
    launched.id = id;
  });

  it('Sessions lists my running session; Resume shows it again; Stop ends it with no error dialog', { timeout: 180_000 }, async () => {
    const token = (await api.login(USER.username, USER.password)).access_token;
    const id = launched.id;
    assert.ok(id, 'the launch test left a session');
    // End the browser the last test launched (its own process group: the wrapper and xpra): the session stays.
    for (const pid of launchedChildren()) process.kill(-pid, 'SIGTERM');
    await waitForSession(api, token, id, (s) => s.state === 'idle', 60_000);
    startGui();
    let main = await waitWindow('HackStream');
    await press(main, 'alt+s');
    const list = await waitWindow('HackStream: sessions');
    // The columns' cells, as yad got them: the session id first (what Resume and Stop act on).
    const cells = list.args.slice(list.args.indexOf('--') + 1);
    assert.deepEqual(cells.slice(0, 5), [id, 'firefox', 'https://example.org/from-gui', 'low', 'idle']);
    assert.ok(list.args.includes('--column=Session') && list.args.includes('--print-column=1'), list.args.join(' '));
    // yad selects the first row: Resume attaches it again (`hackstream attach <id>`).
    await press(list, 'alt+r');
    await waitForSession(api, token, id, (s) => s.state === 'connected', 90_000);
    const children = launchedChildren();
    assert.equal(children.length, 1);
    assert.deepEqual(cmdline(children[0]!).slice(1), [`${ROOT}bin/hackstream`, 'attach', id]);

    main = await waitWindow('HackStream', 20_000, main.pid);
    await press(main, 'alt+s');
    const again = await waitWindow('HackStream: sessions', 20_000, list.pid);
    assert.ok(again.args.includes('connected'), again.args.join(' '));
    await press(again, 'alt+t');
    assert.equal((await waitForSession(api, token, id, (s) => s.state === 'stopped', 60_000)).state, 'stopped');
    // The list comes back empty: a message says so; the ended browser shows no error dialog.
    const none = await waitWindow('HackStream: sessions', 20_000, again.pid);
    assert.match(textOf(none), /No sessions are running/);
    await press(none, 'Return');
    main = await waitWindow('HackStream', 20_000, main.pid);
    for (const stop = Date.now() + 10_000; launchedChildren().length > 0 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(launchedChildren(), [], 'the resumed browser ended with its session');
    const errors = await xdo('search', '--onlyvisible', '--name', '^HackStream: error$').catch(() => '');
    assert.equal(errors, '', 'no error dialog for a session the user stopped');
    await press(main, 'alt+q');
    assert.equal(await guiExited(), 0);
  });

  it('the next start opens the main window with the recent URL; Log out returns to the sign-in form', { timeout: 60_000 }, async () => {
    startGui();
    const main = await waitWindow('HackStream');
    assert.equal(main.args.at(-1), 'https://example.org/from-gui');
    await press(main, 'alt+o');
    const form = await waitWindow('HackStream: sign in');
    assert.ok(!existsSync(join(configDir, 'tokens.json')), 'tokens removed');
    assert.ok(form.args.includes(serverUrl()), 'the server URL is kept');
    await press(form, 'alt+q');
    assert.equal(await guiExited(), 0);
  });

  it('a changed server certificate is shown with a warning; Cancel keeps the old pin', { timeout: 60_000 }, async () => {
    const file = join(configDir, 'config.json');
    const old = 'AB:'.repeat(31) + 'AB';
    writeFileSync(file, JSON.stringify({ api_url: serverUrl(), fingerprint: old, address: '127.0.0.1' }), { mode: 0o600 });
    startGui();
    const form = await waitWindow('HackStream: sign in');
    await drive(form, '{Tab}', USER.username, '{Tab}', USER.password);
    await press(form, 'Return');
    const trust = await waitWindow('HackStream: trust this server?');
    assert.match(textOf(trust), /WARNING: this is not the certificate pinned before/);
    assert.ok(presented.some((f) => textOf(trust).includes(f)) && textOf(trust).includes(old), textOf(trust));
    await press(trust, 'alt+c');
    const again = await waitWindow('HackStream: sign in', 20_000, form.pid);
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { fingerprint: string }).fingerprint, old);
    assert.ok(!existsSync(join(configDir, 'tokens.json')));
    await press(again, 'alt+q');
    assert.equal(await guiExited(), 0);
  });
});
