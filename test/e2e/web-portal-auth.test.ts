import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startApi, type TestApi } from '../helpers/api.js';
import { configureAndLogin, runCli } from '../helpers/cli.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { midStep, oathtoolCode, STEP_MS } from '../helpers/oathtool.js';
import { startOp, type TestOp } from '../helpers/oidc-op.js';
import { axeSerious, gotoPage, launchChromium, portalContext, tabTo } from '../helpers/portal.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * Issue 14's user portal, the parts that need no session container, in real Chromium against
 * the real server (in-process: gateway + control) and a real OpenID provider (oidc-provider):
 * SSO through the provider's redirect ending signed in with the portal's cookies, sign-out
 * ending only this browser's login (a CLI login of the same user survives), quota and usage,
 * a quota refusal in words, keyboard-only sign-in and launch, axe-core on the pages.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ART = join(ROOT, 'artifacts', 'web');
mkdirSync(ART, { recursive: true });
const scratch = scratchDirs('hs-web-auth-');
const LOCAL = { username: 'portal-local', password: 'Portal-Local-Password-7731' };
const CAPPED = { username: 'portal-capped', password: 'Portal-Capped-Password-7731' };

let op: TestOp;
let api: TestApi;
let browser: Browser;
let origin: string;
/** The SSO user's access token (its portal cookie), to enrol a second factor with. */
let ssoAccess = '';

before(async () => {
  // The provider must know the redirect URI, port included, before the server starts.
  const port = await freePort();
  origin = `https://${PUBLIC_HOST}:${port}`;
  op = await startOp({
    dir: scratch(),
    redirectUris: [`${origin}/v1/auth/flows/op/callback`],
    accounts: { sso1: { claims: { preferred_username: 'sso-alice' } } },
  });
  api = await startApi({
    config: {
      listen: `127.0.0.1:${port}`,
      plugins: {
        'auth-local': {},
        'auth-oidc': { issuers: { op: { issuer: op.issuer, label: 'Test SSO', clientId: op.client.clientId, clientSecret: op.client.clientSecret, caFile: op.caFile, scopes: ['openid', 'profile'] } } },
        'quota-default': {},
        'mfa-totp': { keyFile: join(scratch(), 'mfa-totp.key') },
      },
    },
  });
  await api.createUser(LOCAL.username, LOCAL.password);
  await api.createUser(CAPPED.username, CAPPED.password, { quota: { max_sessions: 0 } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await api?.close();
  await op?.close();
});

const newContext = () => portalContext(browser);

/** Signs in with the keyboard only: Tab to each field, type, Enter. */
async function keyboardSignIn(ctx: BrowserContext, who: { username: string; password: string }): Promise<Page> {
  const p = await ctx.newPage();
  await gotoPage(p, `${origin}/`);
  await p.waitForSelector('#username');
  await tabTo(p, '#username');
  await p.keyboard.type(who.username);
  await p.keyboard.press('Tab');
  await p.keyboard.type(who.password);
  await p.keyboard.press('Enter');
  await p.waitForSelector('#sign-out');
  return p;
}

/** oidc-provider's login form (any password), then its consent form; until the browser is back with us. */
async function atProvider(p: Page, account: string): Promise<void> {
  for (let step = 0; step < 4 && new URL(p.url()).origin === op.issuer; step++) {
    const before = p.url();
    if (await p.locator('input[name="login"]').count()) {
      await p.fill('input[name="login"]', account);
      await p.fill('input[name="password"]', 'any');
    }
    await p.click('button[type="submit"]');
    await p.waitForURL((u) => u.href !== before);
  }
}

async function status(p: Page, path: string): Promise<number> {
  return (await p.evaluate(`fetch(${JSON.stringify(path)}).then((r) => r.status)`)) as number;
}

describe('the portal: SSO, sign-out, quota (real Chromium, real OpenID provider)', { timeout: 240_000 }, () => {
  it('the sign-in page offers the SSO provider and has no serious or critical axe violation', async () => {
    const ctx = await newContext();
    try {
      const p = await ctx.newPage();
      await gotoPage(p, `${origin}/`);
      const link = p.locator('a.sso-link[data-flow="op"]');
      await link.waitFor();
      assert.equal((await link.textContent())?.trim(), 'Test SSO');
      assert.equal(await link.getAttribute('href'), '/web/sso/op');
      assert.deepEqual(await axeSerious(p), []);
      await p.screenshot({ path: join(ART, 'sign-in.png') });
    } finally {
      await ctx.close();
    }
  });

  it('SSO: the provider\'s redirect (state, nonce, PKCE) ends signed in to the portal with the cookie', async () => {
    const ctx = await newContext();
    try {
      const p = await ctx.newPage();
      await gotoPage(p, `${origin}/`);
      await p.click('a.sso-link[data-flow="op"]');
      // oidc-provider's own login page, then its consent page.
      await p.waitForURL((u) => u.origin === op.issuer);
      const sso = (await ctx.cookies(origin)).find((c) => c.name === '__Host-hs_sso');
      assert.ok(sso, 'the portal kept the flow\'s state in a cookie');
      assert.equal(sso.httpOnly, true);
      assert.equal(sso.sameSite, 'Lax');
      await atProvider(p, 'sso1');
      await p.waitForSelector('#sign-out');
      assert.equal(p.url(), `${origin}/`, 'back on the portal, nothing in the URL');
      assert.equal((await p.textContent('#who'))?.trim(), 'sso-alice');
      const cookies = await ctx.cookies(origin);
      const at = cookies.find((c) => c.name === '__Host-hs_at');
      assert.ok(at && at.httpOnly && at.secure && at.sameSite === 'Strict', 'the access cookie as a password sign-in sets it');
      assert.equal(cookies.find((c) => c.name === '__Host-hs_sso'), undefined, 'the state cookie is spent');
      assert.equal(await p.evaluate('document.cookie'), '');
      await p.screenshot({ path: join(ART, 'sso-signed-in.png') });
      ssoAccess = at.value;
    } finally {
      await ctx.close();
    }
  });

  it('SSO then a second factor: the code form appears, the challenge never in a URL; the right code signs in', async () => {
    assert.ok(ssoAccess, 'the SSO test signed in first');
    const e = await api.request('POST', '/v1/plugins/mfa-totp/enrolment', { token: ssoAccess, body: {} });
    assert.equal(e.status, 201, e.text);
    const { secret } = e.json as { secret: string };
    const c = await api.request('POST', '/v1/plugins/mfa-totp/enrolment/confirm', { token: ssoAccess, body: { code: await oathtoolCode(secret, await midStep()) } });
    assert.equal(c.status, 200, c.text);
    const ctx = await newContext();
    try {
      const p = await ctx.newPage();
      const urls: string[] = [];
      p.on('framenavigated', (f) => urls.push(f.url()));
      await gotoPage(p, `${origin}/`);
      await p.click('a.sso-link[data-flow="op"]');
      await p.waitForURL((u) => u.origin === op.issuer);
      await atProvider(p, 'sso1');
      await p.waitForSelector('#code');
      assert.equal(p.url(), `${origin}/`, 'the fragment is read and cleared');
      const kept = (await ctx.cookies(origin)).find((k) => k.name === '__Host-hs_mfa');
      assert.ok(kept && kept.httpOnly && kept.sameSite === 'Strict', 'the challenge waits in an HttpOnly cookie');
      assert.ok(!urls.some((u) => u.includes(kept.value)), 'the challenge id is in no URL');
      assert.equal((await ctx.cookies(origin)).find((k) => k.name === '__Host-hs_at'), undefined, 'no tokens before the code');
      await p.fill('#code', await oathtoolCode(secret, (await midStep()) + STEP_MS));
      await p.click('#sign-in');
      await p.waitForSelector('#sign-out');
      assert.equal((await p.textContent('#who'))?.trim(), 'sso-alice');
      assert.equal((await ctx.cookies(origin)).find((k) => k.name === '__Host-hs_mfa'), undefined, 'the challenge cookie is spent');
    } finally {
      await ctx.close();
    }
  });

  it('a callback whose state is not the one this browser began goes to the API (no portal cookies)', async () => {
    const ctx = await newContext();
    try {
      const p = await ctx.newPage();
      // Begin in this browser (the state cookie is set), then come back with another state.
      await gotoPage(p, `${origin}/`);
      assert.equal(await p.evaluate(`fetch('/web/sso/op', { redirect: 'manual' }).then((r) => r.type)`), 'opaqueredirect');
      assert.ok((await ctx.cookies(origin)).some((c) => c.name === '__Host-hs_sso'));
      const r = await gotoPage(p, `${origin}/v1/auth/flows/op/callback?state=${'A'.repeat(43)}&code=x`);
      assert.equal(r?.status(), 400);
      assert.equal(((await r?.json()) as { error: { code: string } }).error.code, 'AUTH_FLOW_STATE_INVALID');
      assert.equal((await ctx.cookies(origin)).find((c) => c.name === '__Host-hs_at'), undefined);
    } finally {
      await ctx.close();
    }
  });

  it('signing out of the portal ends only this browser\'s login: the same user\'s CLI login keeps working', async () => {
    const home = scratch();
    await configureAndLogin(api, LOCAL, home);
    const ctx = await newContext();
    try {
      const p = await keyboardSignIn(ctx, LOCAL);
      const kept = await ctx.cookies(origin);
      await p.click('#sign-out');
      await p.waitForSelector('#sign-in');
      assert.equal(await status(p, '/web/api/me'), 401);
      // The old cookies, replayed: neither the access nor the refresh token works any more.
      await ctx.addCookies(kept.filter((c) => c.name.startsWith('__Host-hs_')));
      assert.equal(await status(p, '/web/api/me'), 401, 'the signed-out login cannot be renewed');
      const list = await runCli(['list'], { home });
      assert.equal(list.code, 0, `the CLI's login survived: ${list.stderr}`);
      // A second browser of the same user is not signed out either.
      const other = await newContext();
      try {
        const q = await keyboardSignIn(other, LOCAL);
        const again = await newContext();
        const r = await keyboardSignIn(again, LOCAL);
        await r.click('#sign-out');
        await r.waitForSelector('#sign-in');
        assert.equal(await status(q, '/web/api/me'), 200, 'the other browser stays signed in');
        await again.close();
      } finally {
        await other.close();
      }
    } finally {
      await ctx.close();
    }
  });

  it('shows quota and usage; a quota refusal says what to do; keyboard only; no serious axe violation', async () => {
    const ctx = await newContext();
    try {
      const p = await keyboardSignIn(ctx, CAPPED);
      assert.equal((await p.textContent('#quota-sessions'))?.trim(), '0 of 0');
      assert.match((await p.textContent('#quota')) ?? '', /2048 MB memory, 1 CPU/);
      assert.deepEqual(await axeSerious(p), []);
      // Launch with the keyboard only: the URL, the quality preset, Enter.
      await tabTo(p, '#launch-url');
      await p.keyboard.type('https://example.org/');
      await p.keyboard.press('Tab');
      await p.keyboard.press('ArrowDown');
      assert.equal(await p.inputValue('#launch-quality'), 'high');
      await p.keyboard.press('Tab');
      await p.keyboard.press('Enter');
      const error = p.locator('form.launch .error[role="alert"]');
      await error.waitFor();
      assert.equal(
        (await error.textContent())?.trim(),
        'At most 0 sessions may run at once. Stop a session you no longer need (in "My sessions" below), or ask an administrator for a larger quota.',
      );
      await p.screenshot({ path: join(ART, 'quota-refusal.png') });
      assert.deepEqual(await axeSerious(p), [], 'with the error shown');
    } finally {
      await ctx.close();
    }
  });
});
