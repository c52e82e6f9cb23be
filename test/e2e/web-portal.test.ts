import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startXvfb, until, type Rgb } from '../helpers/display.js';
import { configureAndLogin, spawnCli } from '../helpers/cli.js';
import { hostAddress, servePage, startServer, type PageServer, type ServerProcess } from '../helpers/e2e.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { cleanupSessions, containersOf, docker, testSessions } from '../helpers/sessions.js';
import { scratchDirs } from '../helpers/tmp.js';
import { apiCall } from '../helpers/web.js';
import { axeSerious, gotoPage, launchChromium, portalContext, signInPortal, tabTo } from '../helpers/portal.js';
import { centre, clientClipboard, clientSettings, colourIn, localClipboard } from '../helpers/xpra-tab.js';

/*
 * Issue 14, first slice, in real Chromium: the portal signs a user in, launches Firefox on a
 * page this test serves, and opens the session in a tab with xpra's HTML5 client, relayed by
 * the edge over the API port. Checks are on the tab's pixels; screenshots in artifacts/web/.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ART = join(ROOT, 'artifacts', 'web');
mkdirSync(ART, { recursive: true });
const PAGE = readFileSync(join(import.meta.dirname, '../fixtures/e2e/page.html'), 'utf8');
const MAGENTA: Rgb = { r: 255, g: 0, b: 255 };
const CYAN: Rgb = { r: 0, g: 255, b: 255 };
const ORANGE: Rgb = { r: 255, g: 128, b: 0 };
const YELLOW: Rgb = { r: 255, g: 255, b: 0 };
// #field is 520×72 inside a 4 px border: most of it is a yellow nothing else on the page has.
const FIELD_PIXELS = 20_000;
const TYPED = 'typed 9035';
const PASTED = 'pasted 5521';
// #block is 560×220; JPEG smears its edges: half of it is a block no other page shows.
const BLOCK_PIXELS = 60_000;
// No spaces: session URLs may not hold whitespace.
const HOSTILE = `http://example.invalid/"><img/src=x/onerror=alert(1)><script>alert(2)</script>?q="><img/src=x/onerror=alert(3)>`;

const scratch = scratchDirs('hs-web-');
const base = testSessions();
const hostIp = hostAddress();
const sessions = { ...base, network: { ...base.network, allow: [`${hostIp}/32`] } };
const USER = { username: 'web-user', password: 'Web-User-Password-4217' };
const OTHER = { username: 'web-other', password: 'Web-Other-Password-4217' };

let server: ServerProcess;
let page: PageServer;
let browser: Browser;
let alice: BrowserContext;
let portal: Page;
const state: { id?: string; containerId?: string; startedAt?: string } = {};
let shots = 0;
const tabLog: string[] = [];
/** Connect tokens the tabs fetched (read from the responses, to look for them where they must not be). */
const tokens: string[] = [];
for (const f of readdirSync(ART)) rmSync(join(ART, f), { force: true, recursive: true });
const shotPath = (name: string) => join(ART, `${String(++shots).padStart(2, '0')}-${name}.png`);

function origin(): string {
  return `https://${PUBLIC_HOST}:${server.port}`;
}

const newContext = () => portalContext(browser);
const signIn = (ctx: BrowserContext, who: { username: string; password: string }) => signInPortal(ctx, origin(), who);

/** Waits for the page's magenta block in the tab; keeps that screenshot. */
async function magentaIn(tab: Page, name: string): Promise<void> {
  await colourIn(tab, MAGENTA, BLOCK_PIXELS, name, shotPath);
}

/**
 * Opens the session from the portal's "Open in browser" button; the new tab once xpra's client
 * is connected. Chromium aborts loads with ERR_NETWORK_CHANGED when an interface comes or goes
 * on the host (Docker networks of other tests): such a tab is reloaded, a few times at most.
 */
async function openInBrowser(p: Page, id: string): Promise<Page> {
  const [tab] = await Promise.all([p.context().waitForEvent('page'), p.click(`tr[data-session="${id}"] button.open`)]);
  let networkChanged = false;
  tab.on('console', (m) => {
    tabLog.push(`${m.type()}: ${m.text()}`);
    if (m.text().includes('ERR_NETWORK_CHANGED')) networkChanged = true;
  });
  tab.on('pageerror', (e) => tabLog.push(`pageerror: ${e.message}`));
  for (let attempt = 1; ; attempt++) {
    await tab.waitForLoadState('domcontentloaded');
    const ok = await until(async () => {
      if (networkChanged) return 'changed';
      return (await tab.evaluate('Boolean(window.client && window.client.connected)').catch(() => false)) ? 'connected' : undefined;
    }, 90_000, 'the tab did not connect');
    if (ok === 'connected') return tab;
    if (attempt === 4) throw new Error('the tab lost its network (ERR_NETWORK_CHANGED) on every try');
    networkChanged = false;
    tabLog.push(`(test: reloading the tab after ERR_NETWORK_CHANGED, try ${attempt})`);
    await tab.reload();
  }
}

async function sessionState(id: string): Promise<string | undefined> {
  const listed = (await portal.evaluate(`fetch('/web/api/sessions').then((r) => r.json())`)) as { items: { session_id: string; state: string }[] };
  return listed.items.find((s) => s.session_id === id)?.state;
}

async function theContainer() {
  const mine = (await containersOf(sessions.instanceId)).filter((c) => c.State === 'running');
  assert.equal(mine.length, 1, `one running container, found ${mine.length}`);
  return docker.getContainer(mine[0]!.Id).inspect();
}

before(async () => {
  page = await servePage(PAGE, hostIp);
  server = await startServer({ dataDir: scratch(), publicHost: PUBLIC_HOST, config: { sessions } });
  const admin = await apiCall(server, 'POST', '/v1/login', { body: { username: 'admin', password: server.adminPassword } });
  assert.equal(admin.status, 200, JSON.stringify(admin.json));
  const token = (admin.json as { access_token: string }).access_token;
  for (const u of [USER, OTHER]) {
    const r = await apiCall(server, 'POST', '/v1/users', { token, body: { ...u, role: 'user' } });
    assert.equal(r.status, 201, JSON.stringify(r.json));
  }
  browser = await launchChromium();
});

after(async () => {
  const parts: [string, () => Promise<unknown>][] = [
    ['browser', async () => browser?.close()],
    ['server', async () => {
      const code = await server?.stop();
      writeFileSync(join(ART, 'server.log'), `${(server?.logs() ?? []).join('\n')}\n(exit ${code})\n`);
      writeFileSync(join(ART, 'tabs.log'), tabLog.join('\n'));
    }],
    ['page', async () => page?.close()],
    ['sessions', () => cleanupSessions(sessions)],
  ];
  for (const [what, part] of parts) await part().catch((err: unknown) => process.stderr.write(`web cleanup (${what}): ${String(err)}\n`));
});

describe('the portal and a session in a browser tab (real Chromium)', { timeout: 400_000 }, () => {
  it('serves the portal with a strict CSP, and refuses a state change without the CSRF header', async () => {
    const r = await apiCall(server, 'GET', '/');
    assert.equal(r.status, 200);
    const csp = String(r.headers['content-security-policy']);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const x = await apiCall(server, 'GET', '/xpra/session.html');
    assert.doesNotMatch(String(x.headers['content-security-policy']), /unsafe-inline|unsafe-eval/);
    assert.match(String(x.headers['content-security-policy']), /frame-ancestors 'none'/);
    // xpra's own pages (inline scripts, a password in the URL) are not served.
    assert.equal((await apiCall(server, 'GET', '/xpra/connect.html')).status, 404);
    const noCsrf = await apiCall(server, 'POST', '/web/api/login', { body: USER });
    assert.equal(noCsrf.status, 403);
    const crossSite = await apiCall(server, 'POST', '/web/api/login', { body: USER, headers: { 'x-hackstream-csrf': '1', origin: 'https://evil.example' } });
    assert.equal(crossSite.status, 403);
  });

  it('a user signs in: HttpOnly, Secure, SameSite=Strict cookies; nothing in localStorage', async () => {
    alice = await newContext();
    alice.on('response', (r) => {
      if (!/\/web\/api\/sessions\/[0-9a-f-]+\/connect$/.test(r.url())) return;
      r.json().then((b: { token?: string }) => b.token && tokens.push(b.token), () => undefined);
    });
    portal = await signIn(alice, USER);
    assert.equal((await portal.textContent('#who'))?.trim(), USER.username);
    const cookies = await alice.cookies();
    const at = cookies.find((c) => c.name === '__Host-hs_at');
    assert.ok(at, 'the access cookie is set');
    assert.equal(at.httpOnly, true);
    assert.equal(at.secure, true);
    assert.equal(at.sameSite, 'Strict');
    assert.equal(await portal.evaluate('localStorage.length + sessionStorage.length'), 0);
    assert.equal(await portal.evaluate('document.cookie'), '', 'no cookie readable by scripts');
  });

  it('launches Firefox on the test page with a quality preset, keyboard only; the list shows it live with its age', { timeout: 150_000 }, async () => {
    assert.deepEqual(await axeSerious(portal), [], 'the sessions page, empty');
    await tabTo(portal, '#launch-url');
    await portal.keyboard.type(page.url);
    await portal.keyboard.press('Tab');
    // From the default (auto) one up: low.
    await portal.keyboard.press('ArrowUp');
    assert.equal(await portal.inputValue('#launch-quality'), 'low');
    await portal.keyboard.press('Tab');
    await portal.keyboard.press('Enter');
    const row = portal.locator('tr[data-session]');
    await row.first().waitFor({ timeout: 120_000 });
    state.id = (await row.first().getAttribute('data-session')) ?? undefined;
    assert.ok(state.id);
    await until(async () => {
      const st = (await portal.textContent(`tr[data-session="${state.id}"] td.state`).catch(() => null)) ?? '';
      return /^(ready|idle|connected)$/.test(st) ? st : undefined;
    }, 120_000, 'the session did not become ready');
    assert.equal((await portal.textContent(`tr[data-session="${state.id}"] td.url`))?.trim(), page.url);
    assert.equal((await portal.textContent(`tr[data-session="${state.id}"] td.quality`))?.trim(), 'low');
    assert.equal((await portal.textContent('#quota-sessions'))?.trim(), '1 of 2', 'the usage counts it');
    assert.deepEqual(await axeSerious(portal), [], 'the sessions page with a session');
    await portal.screenshot({ path: shotPath('portal-session-listed') });
  });

  it('"Open in browser" shows the page in the tab (by pixels); the token is in no URL', { timeout: 150_000 }, async () => {
    assert.ok(state.id);
    const tab = await openInBrowser(portal, state.id);
    assert.equal(tab.url(), `${origin()}/xpra/session.html#${state.id}`);
    await magentaIn(tab, 'page-in-tab');
    // The session's preset (low) reached xpra's HTML5 client: the encodings it offered and
    // the quality and speed in its hello, the numbers the CLI's --quality=low passes.
    assert.equal(await tab.evaluate('document.documentElement.dataset.quality'), 'low');
    const settings = await clientSettings(tab);
    assert.deepEqual(settings.encodings, ['rgb', 'jpeg']);
    const sent = { encoding: 'rgb', 'encoding.quality': 35, 'encoding.min-quality': 20, 'encoding.speed': 50, 'encoding.min-speed': 20, auto_refresh_delay: 0 };
    for (const [k, v] of Object.entries(sent)) assert.equal(settings.caps[k], v, `hello ${k}`);
    assert.deepEqual(await axeSerious(tab), [], 'the session tab');
    // An open tab is an attached client: the edge counts its relay like a tunnel.
    await until(async () => ((await sessionState(state.id!)) === 'connected' ? true : undefined), 60_000, 'the session did not become connected');
    const c = await theContainer();
    state.containerId = c.Id;
    state.startedAt = c.State.StartedAt;
    // The page came from our server, fetched by Firefox inside the session's container.
    assert.ok(page.hits.some((h) => h.method === 'GET' && h.path === '/'), 'the page server was asked for the page');
    await tab.close();
    await until(async () => ((await sessionState(state.id!)) === 'idle' ? true : undefined), 60_000, 'the session did not become idle once the tab closed');
  });

  it('closing the tab leaves the session running; reopening shows it again from the same container', { timeout: 150_000 }, async () => {
    assert.ok(state.id);
    await portal.reload();
    await portal.waitForSelector(`tr[data-session="${state.id}"]`);
    assert.match((await portal.textContent(`tr[data-session="${state.id}"] td.state`)) ?? '', /^(ready|idle|connected)$/);
    const tab = await openInBrowser(portal, state.id);
    await magentaIn(tab, 'page-in-reopened-tab');
    const c = await theContainer();
    assert.equal(c.Id, state.containerId, 'the same container');
    assert.equal(c.State.StartedAt, state.startedAt, 'not restarted');
    await tab.close();
  });

  it('in the tab, a click and typed text reach the remote page (pixels, and the page reports them); the clipboard goes both ways', { timeout: 180_000 }, async () => {
    assert.ok(state.id);
    await alice.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: origin() });
    const tab = await openInBrowser(portal, state.id);
    await tab.bringToFront();
    const block = await colourIn(tab, MAGENTA, BLOCK_PIXELS, 'before-click', shotPath);
    const at = centre(block);
    await tab.mouse.click(at.x, at.y);
    const cyan = await colourIn(tab, CYAN, BLOCK_PIXELS, 'clicked-block-cyan', shotPath);
    await until(async () => (page.hits.some((h) => h.path === '/event/clicked') ? true : undefined), 30_000, 'the page did not report the click');
    // Keys: a click on the page's (yellow) text field focuses it, then the typed text shows on
    // the orange band and the page reports it. The field is looked for below the block (JPEG's
    // fringes of the block would stretch a box over the whole tab).
    const below = cyan.y + cyan.height;
    const field = await colourIn(tab, YELLOW, FIELD_PIXELS, 'text-field', shotPath, 90_000, { x: 0, y: below, width: 1280, height: 800 - below });
    const clicks = page.hits.filter((h) => h.path === '/event/clicked').length;
    const f = centre(field);
    await tab.mouse.click(f.x, f.y);
    await until(async () => (page.hits.some((h) => h.path === '/event/focused') ? true : undefined), 30_000, 'the click did not focus the field').catch((err: Error) => {
      throw new Error(`${err.message}; the page saw ${page.hits.filter((h) => h.path.startsWith('/event/')).map((h) => h.path).join(' ')} (clicked at ${f.x},${f.y})`);
    });
    await tab.keyboard.type(TYPED, { delay: 60 });
    const typed = () => page.hits.filter((h) => h.path.startsWith('/event/typed?value=')).map((h) => decodeURIComponent(h.path.slice('/event/typed?value='.length)));
    await until(async () => (typed().includes(TYPED) ? true : undefined), 30_000, 'the typed text did not reach the page').catch((err: Error) => {
      throw new Error(`${err.message}; the page saw ${JSON.stringify(typed())}`);
    });
    assert.equal(page.hits.filter((h) => h.path === '/event/clicked').length, clicks, 'the click on the field did not land on the block above it');
    await colourIn(tab, ORANGE, 30_000, 'typed-text-on-orange', shotPath);
    // Remote → local: Firefox copies the field's text; xpra sends it to the tab, whose client
    // writes it to the browser's clipboard (the context has the clipboard permissions).
    await tab.keyboard.press('Control+a');
    await tab.keyboard.press('Control+c');
    await until(async () => ((await localClipboard(tab)) === TYPED ? true : undefined), 30_000, 'the remote copy did not reach the local clipboard');
    // Local → remote: the client reads the browser's clipboard when Control goes down and sends
    // it to xpra; Ctrl+V then pastes it into the field.
    await tab.evaluate(`navigator.clipboard.writeText(${JSON.stringify(PASTED)})`);
    await tab.keyboard.press('Control+a');
    await tab.keyboard.down('Control');
    await until(async () => ((await clientClipboard(tab)) === PASTED ? true : undefined), 30_000, 'the client did not take the local clipboard');
    await tab.keyboard.press('v');
    await tab.keyboard.up('Control');
    await until(async () => (typed().includes(PASTED) ? true : undefined), 30_000, 'the local clipboard was not pasted in the remote page').catch((err: Error) => {
      throw new Error(`${err.message}; the page saw ${JSON.stringify(typed())}`);
    });
    await tab.close();
  });

  it('another user cannot open, stop or even learn of the session (404): by page, by API, by WebSocket URL', { timeout: 90_000 }, async () => {
    assert.ok(state.id);
    const id = state.id;
    const bob = await newContext();
    try {
      const p = await signIn(bob, OTHER);
      // By page: not in the portal's list; the session tab, opened by its URL, says not found.
      assert.equal(await p.locator(`tr[data-session="${id}"]`).count(), 0);
      const tab = await bob.newPage();
      await gotoPage(tab, `${origin()}/xpra/session.html#${id}`);
      await tab.waitForSelector('#hs-status[data-state="closed"]');
      assert.equal((await tab.textContent('#hs-status'))?.trim(), 'Cannot open: no such session');
      await tab.screenshot({ path: shotPath('other-user-tab-not-found') });
      // By the portal's API: the list leaves it out; connect and stop are 404 like a made-up id.
      const call = (method: string, path: string) =>
        p.evaluate(`fetch(${JSON.stringify(path)}, {method: ${JSON.stringify(method)}, headers: {'x-hackstream-csrf': '1'}}).then(async (r) => [r.status, (await r.json().catch(() => ({}))).error?.code ?? null])`);
      const listed = (await p.evaluate(`fetch('/web/api/sessions').then((r) => r.json())`)) as { items: { session_id: string }[] };
      assert.ok(!listed.items.some((s) => s.session_id === id), 'not listed');
      const made = '00000000-0000-4000-8000-000000000000';
      for (const path of [`/web/api/sessions/${id}/connect`, `/web/api/sessions/${id}/stop`]) {
        assert.deepEqual(await call('POST', path), [404, 'NOT_FOUND'], path);
        assert.deepEqual(await call('POST', path.replace(id, made)), [404, 'NOT_FOUND'], `${path} of a made-up id answers the same`);
      }
      // By the REST API with the same user's bearer token.
      const login = await apiCall(server, 'POST', '/v1/login', { body: OTHER });
      const token = (login.json as { access_token: string }).access_token;
      for (const [method, path] of [['GET', `/v1/sessions/${id}`], ['POST', `/v1/sessions/${id}/connect`], ['POST', `/v1/sessions/${id}/stop`]] as const) {
        const r = await apiCall(server, method, path, { token, ...(method === 'POST' ? { body: {} } : {}) });
        const made404 = await apiCall(server, method, path.replace(id, made), { token, ...(method === 'POST' ? { body: {} } : {}) });
        assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.json)}`);
        assert.deepEqual(r.json, made404.json, `${method} ${path} answers as for a session that does not exist`);
      }
      const v1list = await apiCall(server, 'GET', '/v1/sessions', { token });
      assert.ok(!JSON.stringify(v1list.json).includes(id), 'not in GET /v1/sessions');
      // By the WebSocket URL: the browser's upgrade is refused; with bob's cookie the edge says 404.
      const ws = await p.evaluate(`new Promise((resolve) => {
        const ws = new WebSocket('wss://' + location.host + '/web/ws/${id}', 'binary');
        ws.onopen = () => { ws.close(); resolve('open'); };
        ws.onerror = () => resolve('refused');
      })`);
      assert.equal(ws, 'refused');
      const bobCookie = (await bob.cookies(origin())).filter((c) => c.name.startsWith('__Host-hs_')).map((c) => `${c.name}=${c.value}`).join('; ');
      const upgrade = (cookie?: string) =>
        apiCall(server, 'GET', `/web/ws/${id}`, {
          headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', origin: origin(), ...(cookie ? { cookie } : {}) },
        });
      assert.equal((await upgrade(bobCookie)).status, 404);
      assert.equal((await upgrade()).status, 401, 'no cookie at all');
      // The session is untouched, and its owner's own browser reaches it (the checks above can fail).
      assert.match((await sessionState(id)) ?? '', /^(ready|idle|connected)$/);
      const own = await portal.evaluate(`new Promise((resolve) => {
        const ws = new WebSocket('wss://' + location.host + '/web/ws/${id}', 'binary');
        ws.onopen = () => { ws.close(); resolve('open'); };
        ws.onerror = () => resolve('refused');
      })`);
      assert.equal(own, 'open');
    } finally {
      await bob.close();
    }
  });

  it('after the tab, the CLI attaches to the same session; the user then stops it from the portal: the container is gone', { timeout: 240_000 }, async () => {
    assert.ok(state.id);
    const id = state.id;
    const display = await startXvfb();
    const home = scratch();
    try {
      await configureAndLogin(server, USER, home);
      const cli = spawnCli(['attach', id], { home, env: { DISPLAY: display.name } });
      try {
        await until(async () => ((await sessionState(id)) === 'connected' ? true : undefined), 90_000, 'the CLI did not attach').catch((err: Error) => {
          throw new Error(`${err.message}; CLI: ${cli.stderr().slice(-1500)}`);
        });
        const c = await theContainer();
        assert.equal(c.Id, state.containerId, 'the CLI is in the same container the tab showed');
        await portal.bringToFront();
        await portal.reload();
        await portal.click(`tr[data-session="${id}"] button.stop`);
        await portal.waitForSelector(`tr[data-session="${id}"]`, { state: 'detached', timeout: 60_000 });
        await until(async () => ((await containersOf(sessions.instanceId)).some((x) => x.Id === state.containerId) ? undefined : true), 60_000, 'the container is still there');
        await cli.exited(60_000); // the stopped session ends the attached CLI too
        await portal.screenshot({ path: shotPath('stopped-from-portal') });
      } finally {
        cli.kill();
      }
    } finally {
      display.close();
    }
  });

  it('hostile text in a session URL renders as text (no element, no script)', { timeout: 150_000 }, async () => {
    const bob = await newContext();
    try {
      const p = await signIn(bob, OTHER);
      const dialogs: string[] = [];
      p.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      await p.fill('#launch-url', HOSTILE);
      await p.click('#launch');
      await p.locator('tr[data-session], form.launch .error').first().waitFor({ timeout: 120_000 });
      assert.equal(await p.locator('form.launch .error').count(), 0, `the launch failed: ${await p.locator('form.launch .error').textContent().catch(() => '')}`);
      const listed = (await p.evaluate(`fetch('/web/api/sessions').then((r) => r.json())`)) as { items: { url: string }[] };
      const url = listed.items[0]?.url ?? '';
      assert.match(url, /^http:\/\/example\.invalid\//);
      assert.equal((await p.textContent('tr[data-session] td.url'))?.trim(), url, 'the stored URL, character for character');
      assert.equal(await p.locator('#sessions img, #sessions script').count(), 0);
      assert.deepEqual(dialogs, []);
      await p.screenshot({ path: shotPath('hostile-url-as-text') });
      await p.click('tr[data-session] button.stop');
      await p.waitForSelector('#no-sessions', { timeout: 60_000 });
    } finally {
      await bob.close();
    }
  });

  it('the connect tokens the tabs used are in no URL, history entry, console or server log', async () => {
    assert.ok(tokens.length >= 2, `a token per opened tab, saw ${tokens.length}`);
    const history = String(await portal.evaluate('JSON.stringify([location.href, history.length])'));
    const logs = server.logs().join('\n');
    for (const t of tokens) {
      assert.match(t, /^hsc_/);
      assert.ok(!history.includes(t));
      assert.ok(!tabLog.some((l) => l.includes(t)), 'not in the tab console');
      assert.ok(!logs.includes(t), 'not in the server log');
    }
  });

  it('signing out ends the cookie session', async () => {
    await portal.bringToFront();
    await portal.screenshot({ path: shotPath('portal-before-sign-out') });
    await portal.click('#sign-out');
    await portal.waitForSelector('#sign-in');
    const status = await portal.evaluate(`fetch('/web/api/me').then((r) => r.status)`);
    assert.equal(status, 401);
  });
});
