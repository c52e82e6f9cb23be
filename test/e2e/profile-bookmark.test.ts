import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { screenshot, startXvfb, until, windowGeometry, xdotool, type Display, type Rgb } from '../helpers/display.js';
import { artifacts, hostAddress, ocr } from '../helpers/e2e.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { unmountProfiles } from '../helpers/profiles.js';
import { cleanupSessions, launch, testSessions, waitForSession, type CreatedSession } from '../helpers/sessions.js';
import { XPRA_ENV } from '../helpers/xpra.js';

/*
 * A bookmark made in one persistent session is there in the next, seen on the client's
 * screen: the real xpra client on an Xvfb display, Firefox in the session container; session
 * 1 bookmarks a page with Ctrl+D; session 2 (a new container) searches the bookmarks from the
 * address bar ("* " restricts it to bookmarks) and the title is read back by OCR. Screenshots
 * are kept under artifacts/e2e/profile-bookmark/. (The places.sqlite read in session 1 only waits
 * for Firefox to have stored the bookmark before the session is stopped.)
 */

const run = promisify(execFile);
const TITLE = 'HSBM 7731 Saved';
const TITLE_OCR = /HSBM\s*7731/;
const art = artifacts('profile-bookmark');
const MAGENTA: Rgb = { r: 255, g: 0, b: 255 };

describe('a persistent profile keeps a bookmark across sessions (pixels on the client display)', { timeout: 300_000 }, () => {
  const hostIp = hostAddress();
  const base = testSessions({ readyTimeoutMs: 120_000, connectTokenTtlSeconds: 60 });
  const sessions = { ...base, network: { ...base.network, allow: [`${hostIp}/32`] } };
  let display: Display;
  let site: http.Server;
  let pageUrl: string;
  let api: TestApi;
  let alice: string;
  let aliceId: string;
  const clients: ChildProcess[] = [];
  let shots = 0;

  const shoot = async (name: string) => {
    const s = await screenshot(display);
    s.save(art.path(`${String(++shots).padStart(2, '0')}-${name}.png`));
    return s;
  };

  /** The real xpra client attached to the session, drawing on our display. */
  function attach(s: CreatedSession): ChildProcess {
    const dir = mkdtempSync(join(tmpdir(), 'hs-xpra-attach-'));
    writeFileSync(join(dir, 'ca.pem'), s.connect.ca_cert);
    writeFileSync(join(dir, 'token'), s.connect.token, { mode: 0o600 });
    const child = spawn(
      'xpra',
      ['attach', `ssl://127.0.0.1:${api.port}/`, `--ssl-ca-certs=${join(dir, 'ca.pem')}`, `--ssl-server-hostname=${s.connect.sni}`, `--password-file=${join(dir, 'token')}`, '--opengl=no', '--tray=no', '--notifications=no', '--speaker=no', '--microphone=no'],
      { env: { ...XPRA_ENV, DISPLAY: display.name }, stdio: 'ignore' },
    );
    child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    clients.push(child);
    return child;
  }

  const visibleWindow = (name: RegExp | string) => async () =>
    (await xdotool(display, ['search', '--onlyvisible', '--name', typeof name === 'string' ? name : name.source])).split('\n').filter(Boolean).at(-1);

  /** The bookmark titles in the profile's places database (read from a copy: Firefox holds the live one). */
  async function bookmarkTitles(): Promise<string[]> {
    const dir = join(api.dataDir, 'profiles', 'mnt', aliceId);
    const tmp = mkdtempSync(join(tmpdir(), 'hs-places-'));
    try {
      for (const f of ['places.sqlite', 'places.sqlite-wal']) if (existsSync(join(dir, f))) copyFileSync(join(dir, f), join(tmp, f));
      if (!existsSync(join(tmp, 'places.sqlite'))) return [];
      const { stdout } = await run('sqlite3', [join(tmp, 'places.sqlite'), 'SELECT title FROM moz_bookmarks WHERE type = 1 AND title IS NOT NULL']);
      return stdout.split('\n').filter(Boolean);
    } catch {
      return [];
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  async function stopSession(s: CreatedSession, client: ChildProcess): Promise<void> {
    client.kill('SIGTERM');
    await api.request('POST', `/v1/sessions/${s.session_id}/stop`, { token: alice });
    await waitForSession(api, alice, s.session_id, (v) => v.state === 'stopped', 60_000);
  }

  before(async () => {
    display = await startXvfb();
    site = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' });
      res.end(`<title>${TITLE}</title><body style="background:#fff;margin:0"><div style="width:560px;height:220px;background:#f0f"></div><h1 style="font-size:64px">${TITLE}</h1></body>`);
    });
    await new Promise<void>((resolve) => site.listen(0, hostIp, resolve));
    pageUrl = `http://${hostIp}:${(site.address() as { port: number }).port}/page`;
    api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions, plugins: { 'auth-local': {}, 'quota-default': { user: { profileMb: 64, memoryMb: 1536 } } } } });
    aliceId = await api.createUser('alice', 'alice password 1');
    alice = (await api.login('alice', 'alice password 1')).access_token;
  });

  after(async () => {
    for (const c of clients) c.kill('SIGKILL');
    await cleanupSessions(sessions);
    if (api) await unmountProfiles(api.dataDir);
    await api?.close();
    site?.close();
    display?.close();
  });

  it('session 1 bookmarks the page with Ctrl+D; session 2 finds it in its bookmarks, read off the screen', async (t) => {
    t.diagnostic(`screenshots: ${art.dir}`);
    const first = await launch(api, alice, { app: 'firefox', profile: 'persist', url: pageUrl });
    const c1 = attach(first);
    const win1 = await until(visibleWindow(TITLE), 60_000, `no visible window titled ${TITLE}`);
    // Drawn on the client display (the magenta block), not only mapped.
    await until(async () => ((await screenshot(display)).find(MAGENTA, { tolerance: 48, minCount: 60_000 }) ? true : undefined), 45_000, 'the page was not drawn');
    await shoot('session-1-page');
    const g1 = await windowGeometry(display, win1);
    await xdotool(display, ['mousemove', String(g1.x + Math.floor(g1.width / 2)), String(g1.y + Math.floor(g1.height * 0.7)), 'click', '1']);
    await xdotool(display, ['key', 'ctrl+d']);
    await shoot('session-1-ctrl-d');
    // The bookmark is made by Ctrl+D itself; Return closes the edit panel.
    const titles = await until(async () => ((await bookmarkTitles()).includes(TITLE) ? true : undefined), 30_000, 'the bookmark in places.sqlite');
    assert.equal(titles, true);
    await shoot('session-1-bookmarked');
    await xdotool(display, ['key', 'Return']);
    await stopSession(first, c1);

    const second = await launch(api, alice, { app: 'firefox', profile: 'persist' });
    attach(second);
    const win2 = await until(visibleWindow('Firefox'), 60_000, 'no visible Firefox window in session 2');
    // Drawn: Firefox's toolbar (anything but white) shows.
    await until(async () => ((await screenshot(display)).find({ r: 60, g: 60, b: 60 }, { tolerance: 60, minCount: 200 }) ? true : undefined), 45_000, 'session 2 was not drawn');
    const drawn = await shoot('session-2-drawn');
    const before2 = await ocr(drawn, await windowGeometry(display, win2), art.path('session-2-before-ocr.png'));
    assert.doesNotMatch(before2, TITLE_OCR, 'session 2 does not show the title before the search (the check can fail)');
    const g2 = await windowGeometry(display, win2);
    await xdotool(display, ['mousemove', String(g2.x + Math.floor(g2.width / 2)), String(g2.y + Math.floor(g2.height * 0.7)), 'click', '1']);
    // Keys typed while the address bar is still taking the focus can be lost (CI10 once saw
    // the bar focused and empty): the search is typed again while the bar does not show it.
    const search = async () => {
      await xdotool(display, ['key', 'ctrl+l']);
      await xdotool(display, ['type', '--delay', '80', '* HSBM']);
      typedAt = Date.now();
    };
    let typedAt = 0;
    await search();
    let text = '';
    await until(
      async () => {
        const shot = await screenshot(display);
        const w = await windowGeometry(display, win2);
        text = await ocr(shot, { x: w.x, y: w.y, width: w.width, height: Math.min(w.height, 400) }, art.path('session-2-ocr.png'));
        if (!/HSBM/.test(text) && Date.now() - typedAt > 5_000) await search();
        if (!TITLE_OCR.test(text)) return undefined;
        shot.save(art.path(`${String(++shots).padStart(2, '0')}-session-2-bookmark-found.png`));
        return true;
      },
      45_000,
      'the bookmark did not show in session 2',
    ).catch(async (err: Error) => {
      await shoot('FAILED-session-2');
      assert.fail(`${err.message}; last OCR:\n${text}`);
    });
  });
});
