import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, CallError, type Me } from './api.js';
import { html } from './admin-common.js';
import { AuditPage } from './admin-audit.js';
import { CapacityPage } from './admin-capacity.js';
import { SessionsPage } from './admin-sessions.js';
import { UsersPage } from './admin-users.js';

/*
 * The admin console (served to admins only: core/web/admin-pages.ts). One document per page
 * (/admin/users, /admin/sessions, /admin/audit, /admin/capacity), plain links between them,
 * Preact + htm like the portal: every value is rendered as text, never as markup.
 */

const PAGES = [
  { id: 'users', path: '/admin/users', label: 'Users', view: UsersPage },
  { id: 'sessions', path: '/admin/sessions', label: 'Live sessions', view: SessionsPage },
  { id: 'audit', path: '/admin/audit', label: 'Audit', view: AuditPage },
  { id: 'capacity', path: '/admin/capacity', label: 'Capacity', view: CapacityPage },
] as const;

function Console(props: { page: string }) {
  const [me, setMe] = useState<Me | null>(null);
  const [gone, setGone] = useState(false);
  useEffect(() => {
    call<Me>('GET', '/me').then(setMe, (err: unknown) => {
      if (err instanceof CallError && err.info.status === 401) setGone(true);
    });
  }, []);
  const page = PAGES.find((p) => p.id === props.page) ?? PAGES[0];
  const signOut = async () => {
    await call('POST', '/logout').catch(() => undefined);
    location.assign('/');
  };
  if (gone) return html`<p>You are signed out. <a href="/">Sign in</a></p>`;
  const View = page.view;
  return html`<header>
      <span>HackStream admin</span>
      <span id="who">${me?.username ?? ''}</span>
      <a class="plain" href="/">Portal</a>
      <button id="sign-out" type="button" onClick=${signOut}>Sign out</button>
    </header>
    <nav aria-label="Console pages" class="tabs">
      <ul>${PAGES.map((p) => html`<li><a href=${p.path} aria-current=${p.id === page.id ? 'page' : undefined}>${p.label}</a></li>`)}</ul>
    </nav>
    <h1 class="page-title">${page.label}</h1>
    <${View} />`;
}

const root = document.getElementById('app');
if (root) {
  const page = root.dataset.page ?? 'users';
  root.textContent = '';
  render(html`<${Console} page=${page} />`, root);
}
