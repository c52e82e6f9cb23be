import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Router from '@koa/router';
import type { ApiState } from '../api/errors.js';
import type { ApiContext } from '../api/route.js';
import type { ControlPlane } from '../auth/index.js';
import { adminGate } from './admin-routes.js';
import { bundle } from './bundle.js';
import { PORTAL_CSP } from './pages.js';

/*
 * The admin console's pages: one document for each of /admin/{users,sessions,audit,capacity}
 * (/admin is the users page), its script and stylesheet under /admin/assets/. Everything here
 * is served to signed-in admins only; anyone else gets the unknown-path 404, so neither the
 * pages nor the console's script reveal that a console exists. Same CSP as the portal.
 */

export const ADMIN_PAGES = ['users', 'sessions', 'audit', 'capacity'] as const;

const TITLES: Record<(typeof ADMIN_PAGES)[number], string> = {
  users: 'Users',
  sessions: 'Live sessions',
  audit: 'Audit',
  capacity: 'Capacity',
};

export function adminHtml(page: (typeof ADMIN_PAGES)[number]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${TITLES[page]} · HackStream admin</title>
<link rel="stylesheet" href="/assets/portal.css">
<link rel="stylesheet" href="/admin/assets/admin.css">
</head>
<body>
<main id="app" data-page="${page}"><p>Loading…</p></main>
<script type="module" src="/admin/assets/admin.js"></script>
</body>
</html>
`;
}

const CSS = join(import.meta.dirname, '../../web/src/admin.css');

export function mountAdminPages(router: Router<ApiState>, control: ControlPlane): void {
  const gate = adminGate(control);
  const page = (name: (typeof ADMIN_PAGES)[number]) => async (ctx: ApiContext) => {
    await gate(ctx);
    ctx.set('Content-Security-Policy', PORTAL_CSP);
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = adminHtml(name);
  };
  router.get('/admin', page('users'));
  for (const name of ADMIN_PAGES) router.get(`/admin/${name}`, page(name));
  router.get('/admin/assets/admin.js', async (ctx) => {
    await gate(ctx);
    ctx.type = 'text/javascript; charset=utf-8';
    ctx.body = (await bundle('admin')).js;
  });
  router.get('/admin/assets/admin.css', async (ctx) => {
    await gate(ctx);
    ctx.type = 'text/css; charset=utf-8';
    ctx.body = await readFile(CSS, 'utf8');
  });
}
