/*
 * npm run bench:web — first contentful paint of the portal's and the admin console's pages in
 * Chromium on loopback, and the gzipped size of their JavaScript (issue 14's budgets: FCP ≤ 300 ms, JS ≤ 60 KB
 * gzipped). The server is HackStream's gateway + control in this process (test/helpers/api.ts,
 * the production code paths, embedded store); Chromium is Debian's, driven by playwright-core,
 * a fresh browser context (no cache, no cookies) per load. Every response is `no-store`, so
 * each load fetches the page, its CSS and its JS again.
 *
 * Options: --runs N (default 15). Prints a Markdown table (median and p95 per page).
 */
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { bundle } from '../../core/web/bundle.js';
import { ADMIN, startApi } from '../../test/helpers/api.js';
import { PUBLIC_HOST } from '../../test/helpers/gateway.js';
import { launchChromium } from '../../test/helpers/portal.js';
import type { BrowserContext, Page } from 'playwright-core';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 1000) throw new Error('--runs must be an integer from 1 to 1000');

const USER = { username: 'bench-web', password: 'Bench-Web-Password-5510' };

/** The page's first-contentful-paint entry (ms from navigation start), waiting for it if need be. */
function fcp(page: Page): Promise<number> {
  return page.evaluate(`new Promise((resolve) => {
    const e = performance.getEntriesByName('first-contentful-paint')[0];
    if (e) return resolve(e.startTime);
    new PerformanceObserver((list) => {
      const f = list.getEntriesByName('first-contentful-paint')[0];
      if (f) resolve(f.startTime);
    }).observe({ type: 'paint', buffered: true });
  })`) as Promise<number>;
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

interface PageCase {
  name: string;
  path: string;
  /** What shows once the page has rendered its content. */
  ready: string;
  /** Who is signed in for the load (none: signed out). */
  as: 'user' | 'admin' | 'none';
}

const CASES: PageCase[] = [
  { name: 'sign-in (`/`, signed out)', path: '/', ready: '#username', as: 'none' },
  { name: 'sessions list (`/`, signed in)', path: '/', ready: '#sign-out', as: 'user' },
  { name: 'session tab (`/xpra/session.html`, xpra’s client scripts)', path: '/xpra/session.html#00000000-0000-4000-8000-000000000000', ready: '#hs-status', as: 'user' },
  { name: 'console: users (`/admin/users`)', path: '/admin/users', ready: '#users', as: 'admin' },
  { name: 'console: audit (`/admin/audit`)', path: '/admin/audit', ready: '#audit', as: 'admin' },
];

async function main(): Promise<void> {
  const api = await startApi({ config: { plugins: { 'auth-local': {}, 'quota-default': {} } } });
  const browser = await launchChromium();
  try {
    await api.createUser(USER.username, USER.password);
    const origin = `https://${PUBLIC_HOST}:${api.port}`;
    const context = async (as: PageCase['as']): Promise<BrowserContext> => {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
      if (as !== 'none') {
        const who = as === 'admin' ? ADMIN : USER;
        // From a page of the site (the browser's own cookies and host mapping); not measured.
        const p = await ctx.newPage();
        await p.goto(`${origin}/`);
        const status = await p.evaluate(`fetch('/web/api/login', { method: 'POST', headers: { 'content-type': 'application/json', 'x-hackstream-csrf': '1' }, body: ${JSON.stringify(JSON.stringify(who))} }).then((r) => r.status)`);
        if (status !== 204) throw new Error(`sign-in: ${String(status)}`);
        await p.close();
      }
      return ctx;
    };
    // The first page after start bundles the front end (esbuild, in memory): a warm-up load, not counted.
    const warm = await context('user');
    const w = await warm.newPage();
    const t0 = Date.now();
    await w.goto(`${origin}/`);
    await w.waitForSelector('#sign-out');
    const firstLoadMs = Date.now() - t0;
    await warm.close();

    const rows: string[] = [];
    for (const c of CASES) {
      const samples: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const ctx = await context(c.as);
        const p = await ctx.newPage();
        await p.goto(`${origin}${c.path}`);
        await p.waitForSelector(c.ready);
        samples.push(await fcp(p));
        await ctx.close();
      }
      samples.sort((a, b) => a - b);
      rows.push(`| ${c.name} | ${RUNS} | ${quantile(samples, 0.5).toFixed(0)} | ${quantile(samples, 0.95).toFixed(0)} | ${samples[0]!.toFixed(0)}–${samples.at(-1)!.toFixed(0)} |`);
    }
    const [portal, open, admin] = await Promise.all([bundle('portal'), bundle('xpra-open'), bundle('admin')]);
    const out = [
      `HackStream web bench: ${RUNS} loads per page, Chromium ${browser.version()}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), Node ${process.version}`,
      '',
      '| page | loads | FCP median (ms) | FCP p95 (ms) | min–max (ms) |',
      '| --- | --- | --- | --- | --- |',
      ...rows,
      '',
      '| bundle | minified bytes | gzip -9 bytes |',
      '| --- | --- | --- |',
      `| /assets/portal.js | ${Buffer.byteLength(portal.js)} | ${portal.gzipBytes} |`,
      `| /assets/xpra-open.js | ${Buffer.byteLength(open.js)} | ${open.gzipBytes} |`,
      `| /admin/assets/admin.js | ${Buffer.byteLength(admin.js)} | ${admin.gzipBytes} |`,
      `| all three (budget 60 KB = 61 440) | ${Buffer.byteLength(portal.js) + Buffer.byteLength(open.js) + Buffer.byteLength(admin.js)} | ${portal.gzipBytes + open.gzipBytes + admin.gzipBytes} |`,
      '',
      `First load after start (bundling included, not in the table): ${firstLoadMs} ms to the signed-in list.`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await browser.close().catch(() => undefined);
    await api.close();
  }
}

await main();
