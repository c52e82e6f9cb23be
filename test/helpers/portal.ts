import axe from 'axe-core';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { PUBLIC_HOST } from './gateway.js';

/** Debian's chromium through playwright-core: no sandbox (CI containers), no background traffic, a fresh profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', `--host-resolver-rules=MAP ${PUBLIC_HOST} 127.0.0.1`],
  });
}

export interface AxeProblem {
  id: string;
  impact: string;
  help: string;
  targets: string[];
}

/**
 * axe-core on the page as it is now. The source is evaluated through the DevTools protocol,
 * which the page's CSP does not govern (an injected <script> would be refused, rightly).
 * Returns the serious and critical violations.
 */
export async function axeSerious(page: Page): Promise<AxeProblem[]> {
  await page.evaluate(axe.source);
  const result = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({
    id: v.id, impact: v.impact || '', help: v.help, targets: v.nodes.slice(0, 5).map((n) => String(n.target)),
  })))`)) as AxeProblem[];
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Presses Tab until `selector` has the focus (at most `max` times); keyboard-only paths use it. */
export async function tabTo(page: Page, selector: string, max = 30): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate(`document.activeElement?.matches(${JSON.stringify(selector)}) ?? false`)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`${selector} never got the focus by Tab`);
}

/**
 * page.goto, tried again when Chromium aborts it because the host's network changed: other
 * tests' Docker networks coming and going make Chromium drop loads in flight, either as
 * ERR_NETWORK_CHANGED or by replacing the navigation with its error page (chrome-error://).
 * At most 4 tries.
 */
export async function gotoPage(page: Page, url: string): Promise<Response | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.goto(url);
    } catch (err) {
      const changed = err instanceof Error && (err.message.includes('ERR_NETWORK_CHANGED') || err.message.includes('chrome-error://'));
      if (attempt >= 4 || !changed) throw err;
    }
  }
}

/** A fresh context as the portal tests use one: the edge's self-signed certificate accepted, a desktop viewport, UTC. */
export function portalContext(browser: Browser, height = 800): Promise<BrowserContext> {
  return browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height }, timezoneId: 'UTC' });
}

/** Signs `who` in with the portal's password form at `origin` in a new page of `ctx`; `prepare` sees the page before it loads. */
export async function signInPortal(ctx: BrowserContext, origin: string, who: { username: string; password: string }, prepare?: (p: Page) => void): Promise<Page> {
  const p = await ctx.newPage();
  prepare?.(p);
  await gotoPage(p, `${origin}/`);
  await p.fill('#username', who.username);
  await p.fill('#password', who.password);
  await p.click('#sign-in');
  await p.waitForSelector('#sign-out');
  return p;
}
