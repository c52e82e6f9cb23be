import { existsSync } from 'node:fs';
import { ApiClient, type SessionRow } from './api.js';
import { clearTokens, loadConfig, loadTokens, type CliConfig } from './config.js';
import { configure, type PresentedCertificate } from './configure.js';
import { yadDialogs, type Dialogs } from './dialogs.js';
import { CliError, EXIT } from './errors.js';
import { Launcher } from './gui-launch.js';
import { loadRecent, normaliseUrl, rememberUrl } from './recent.js';

/**
 * `hackstream gui`: the desktop launcher. A sign-in form the first time (server URL, pinning
 * like `configure`, username and password), then one window: a URL with the recent ones,
 * Launch Browser, Sessions (my running sessions: resume, stop), Log out, Quit. The work is the CLI's; this only asks and shows.
 */

export interface GuiOptions {
  /** Dial this IP instead of resolving the server's host (like `configure --address`). */
  address?: string;
  dialogs?: Dialogs;
  log: (m: string) => void;
}

const ERROR_TITLE = 'HackStream: error';
/** The package's icon once installed; a theme icon when run from a checkout. */
const LOGO = existsSync('/usr/share/icons/hicolor/scalable/apps/hackstream.svg') ? 'hackstream' : 'web-browser';
const BUTTON = { ok: 0, quit: 1, logout: 3, sessions: 5 } as const;
/** The session list's buttons (yad's codes; Resume is also a double-click or Enter on a row). */
const LIST = { resume: 0, back: 1, stop: 2 } as const;
const LIVE = new Set(['starting', 'ready', 'connected', 'idle']);


function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function savedConfig(): CliConfig | undefined {
  try {
    return loadConfig();
  } catch {
    return undefined; // an invalid file is replaced at the next sign-in
  }
}

const sameOrigin = (a: string, b: string): boolean => {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
};

function trustText(c: PresentedCertificate): string {
  const warning = c.replaces
    ? `\n\nWARNING: this is not the certificate pinned before (${c.replaces}). Trust it only if your administrator reinstalled the server or renewed its certificate.`
    : '';
  return (
    `${c.host} presented a certificate for ${c.subject} issued by ${c.issuer}.\n\nSHA-256 fingerprint to pin:\n${c.fingerprint}\n\n` +
    `Compare it with the one your administrator gave you (hackstream configure shows the same).\nTrust this server and remember it?${warning}`
  );
}

/** Pins the server (asking only when its certificate is new to us); undefined when the user declined. */
async function pinServer(o: GuiOptions, d: Dialogs, input: string): Promise<CliConfig | undefined> {
  const apiUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(input) ? input : `https://${input}`;
  const current = savedConfig();
  const known = current !== undefined && sameOrigin(current.api_url, apiUrl);
  const address = o.address ?? (known ? current.address : undefined);
  let declined = false;
  try {
    return await configure({
      apiUrl,
      yes: false,
      log: o.log,
      ...(address ? { address } : {}),
      confirm: async (c) => {
        if (known && !c.replaces) return true; // the same server with the certificate already pinned
        declined = !(await d.question('HackStream: trust this server?', trustText(c), '_Trust', '_Cancel'));
        return !declined;
      },
    });
  } catch (err) {
    if (declined) return undefined;
    throw err;
  }
}

/** The sign-in form until a login succeeds (true) or the user quits (false). */
async function signIn(o: GuiOptions, d: Dialogs): Promise<boolean> {
  let url = savedConfig()?.api_url ?? '';
  let username = '';
  for (;;) {
    const r = await d.form({
      title: 'HackStream: sign in',
      text: 'Sign in to your HackStream server.',
      image: 'dialog-password',
      fields: [{ label: 'Server URL', value: url }, { label: 'Username', value: username }, { label: 'Password', type: 'H' }],
      buttons: [
        { label: '_Sign in', code: BUTTON.ok },
        { label: '_Quit', code: BUTTON.quit },
      ],
    });
    if (r.code !== BUTTON.ok) return false;
    const [u = '', user = '', password = ''] = r.values;
    [url, username] = [u.trim(), user.trim()];
    if (!url || !username || !password) {
      await d.message('error', ERROR_TITLE, 'Fill in the server URL, your username and your password.');
      continue;
    }
    try {
      const config = await pinServer(o, d, url);
      if (!config) continue;
      url = config.api_url;
      await new ApiClient(config).login(username, password);
      o.log(`Logged in as ${username}.`);
      return true;
    } catch (err) {
      await d.message('error', ERROR_TITLE, messageOf(err));
    }
  }
}

/** A valid access token (refreshed when needed); false when the user must sign in again. */
async function stillSignedIn(d: Dialogs, config: CliConfig): Promise<boolean | 'error'> {
  try {
    await new ApiClient(config).token();
    return true;
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.AUTH) {
      clearTokens();
      await d.message('error', ERROR_TITLE, 'Your login has expired: sign in again.');
      return false;
    }
    await d.message('error', ERROR_TITLE, messageOf(err));
    return 'error';
  }
}

/**
 * My running sessions (app, URL, quality, state, age): Resume shows the selected one again
 * (`hackstream attach`), Stop ends it and shows the list again, Back returns to the main window.
 */
async function sessionsWindow(d: Dialogs, launcher: Launcher, config: CliConfig): Promise<'back' | 'sign-in'> {
  for (;;) {
    const ok = await stillSignedIn(d, config);
    if (ok === false) return 'sign-in';
    if (ok === 'error') return 'back';
    let items: SessionRow[];
    try {
      items = (await new ApiClient(config).call<{ items: SessionRow[] }>('GET', '/v1/sessions')).items.filter((s) => LIVE.has(s.state));
    } catch (err) {
      await d.message('error', ERROR_TITLE, messageOf(err));
      return 'back';
    }
    if (items.length === 0) {
      await d.message('info', 'HackStream: sessions', 'No sessions are running. Launch one from the main window.');
      return 'back';
    }
    const r = await d.list({
      title: 'HackStream: sessions',
      text: 'Your running sessions. Select one, then Resume to show it again or Stop to end it.',
      columns: ['Session', 'App', 'URL', 'Quality', 'State', 'Age'],
      rows: items.map((s) => [s.session_id, s.app, s.url ?? '', s.quality, s.state, age(s.created_at)]),
      buttons: [
        { label: '_Resume', code: LIST.resume },
        { label: 'S_top', code: LIST.stop },
        { label: '_Back', code: LIST.back },
      ],
    });
    if (r.code !== LIST.resume && r.code !== LIST.stop) return 'back';
    const picked = items.find((s) => s.session_id === r.key);
    if (!picked) {
      await d.message('error', ERROR_TITLE, 'Select a session in the list first.');
      continue;
    }
    if (r.code === LIST.resume) {
      return (await launcher.resume(picked.session_id)) === 'signed-out' ? 'sign-in' : 'back';
    }
    launcher.stopping(picked.session_id);
    try {
      await new ApiClient(config).call('POST', `/v1/sessions/${encodeURIComponent(picked.session_id)}/stop`);
    } catch (err) {
      await d.message('error', ERROR_TITLE, messageOf(err));
    }
  }
}

/** The main window until Quit ('quit') or until the user is signed out ('sign-in'). */
async function mainWindow(d: Dialogs, launcher: Launcher): Promise<'quit' | 'sign-in'> {
  for (;;) {
    const config = savedConfig();
    const tokens = loadTokens();
    if (!config || !tokens) return 'sign-in';
    const recent = loadRecent();
    const r = await d.form({
      title: 'HackStream',
      text: `Signed in as ${tokens.username} on ${new URL(config.api_url).host}.\nType a web address or pick a recent one (empty: the browser's start page).`,
      image: LOGO,
      fields: [{ label: 'URL', type: 'CBE', items: recent.length ? recent : [''] }],
      buttons: [
        { label: '_Launch Browser', code: BUTTON.ok },
        { label: '_Sessions', code: BUTTON.sessions },
        { label: 'Log _out', code: BUTTON.logout },
        { label: '_Quit', code: BUTTON.quit },
      ],
    });
    if (r.code === BUTTON.logout) {
      await new ApiClient(config).logout().catch(() => false); // the local tokens are gone either way
      return 'sign-in';
    }
    if (r.code === BUTTON.sessions) {
      if ((await sessionsWindow(d, launcher, config)) === 'sign-in') return 'sign-in';
      continue;
    }
    if (r.code !== BUTTON.ok) return 'quit';
    const typed = (r.values[0] ?? '').trim();
    const url = typed === '' ? undefined : normaliseUrl(typed);
    if (typed !== '' && url === undefined) {
      await d.message('error', ERROR_TITLE, `Not a web address: ${typed}`);
      continue;
    }
    const ok = await stillSignedIn(d, config);
    if (ok === false) return 'sign-in';
    if (ok === 'error') continue;
    if (url) rememberUrl(url);
    if ((await launcher.start(url)) === 'signed-out') return 'sign-in';
  }
}

export async function gui(o: GuiOptions): Promise<void> {
  const d = o.dialogs ?? yadDialogs;
  const launcher = new Launcher(d);
  try {
    let screen: 'sign-in' | 'main' = savedConfig() && loadTokens() ? 'main' : 'sign-in';
    for (;;) {
      if (screen === 'sign-in' && !(await signIn(o, d))) return;
      if ((await mainWindow(d, launcher)) === 'quit') return;
      screen = 'sign-in';
    }
  } finally {
    launcher.detach();
  }
}
