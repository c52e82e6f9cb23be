import { h, render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { call, CallError, type Me, type Session } from './api.js';
import { SignIn, takeHint } from './sign-in.js';
import { errorText } from './words.js';

/*
 * The user portal: sign in, the user's sessions (state, age), launch, stop, open in a browser
 * tab. Preact + htm: text is always rendered as text (no innerHTML anywhere), so a hostile URL
 * shows as the characters it is.
 */
const html = htm.bind(h);

const LIVE = new Set(['starting', 'ready', 'connected', 'idle']);

function age(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function Launch(props: { onLaunched: () => void }) {
  const [url, setUrl] = useState('');
  const [quality, setQuality] = useState('auto');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await call('POST', '/sessions', { app: 'firefox', quality, ...(url ? { url } : {}) });
      setUrl('');
      props.onLaunched();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="launch" onSubmit=${submit}>
    <label>Open Firefox on<input id="launch-url" type="url" placeholder="https://example.org/" value=${url} onInput=${(e: Event) => setUrl((e.target as HTMLInputElement).value)} /></label>
    <label>Quality<select id="launch-quality" value=${quality} onChange=${(e: Event) => setQuality((e.target as HTMLSelectElement).value)}>
      <option value="low">low: slow links, weak computers</option><option value="auto">auto</option><option value="high">high: a fast network</option>
    </select></label>
    <button id="launch" type="submit" disabled=${busy}>${busy ? 'Starting…' : 'Launch Firefox'}</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

function Sessions(props: { items: Session[]; now: number; onChange: () => void }) {
  const [error, setError] = useState('');
  const stop = async (id: string) => {
    setError('');
    try {
      await call('POST', `/sessions/${id}/stop`);
    } catch (err) {
      setError(errorText(err));
    }
    props.onChange();
  };
  const open = (id: string) => {
    window.open(`/xpra/session.html#${id}`, `hs-${id}`, 'noopener');
  };
  if (props.items.length === 0) return html`<p class="muted" id="no-sessions">No sessions running.</p>`;
  return html`<table id="sessions">
    <thead><tr><th scope="col">App</th><th scope="col">URL</th><th scope="col">Quality</th><th scope="col">State</th><th scope="col">Age</th><th scope="col">Actions</th></tr></thead>
    <tbody>${props.items.map(
      (s) => html`<tr key=${s.session_id} data-session=${s.session_id}>
        <td>${s.app}</td><td class="url">${s.url ?? ''}</td><td class="quality">${s.quality}</td>
        <td class="state">${s.state}</td><td>${age(s.created_at, props.now)}</td>
        <td>${LIVE.has(s.state) && html`<button class="open" aria-label=${`Open in browser: ${s.app} session ${s.session_id.slice(0, 8)}`} onClick=${() => open(s.session_id)}>Open in browser</button>
          <button class="stop" aria-label=${`Stop: ${s.app} session ${s.session_id.slice(0, 8)}`} onClick=${() => stop(s.session_id)}>Stop</button>`}</td>
      </tr>`,
    )}</tbody>
  </table>${error && html`<p class="error" role="alert">${error}</p>`}`;
}

/** The quota and what is used of it (GET /web/api/me). */
function Quota(props: { me: Me }) {
  const { quota, usage } = props.me;
  const full = usage.sessions >= quota.max_sessions;
  return html`<section class="card" aria-labelledby="quota-title"><h2 id="quota-title">Quota and usage</h2>
    <dl class="quota" id="quota">
      <div><dt>Sessions running</dt><dd id="quota-sessions">${usage.sessions} of ${quota.max_sessions}</dd></div>
      <div><dt>Each session</dt><dd>${quota.memory_mb} MB memory, ${quota.cpus} CPU</dd></div>
      <div><dt>Stopped after</dt><dd>${quota.idle_timeout_minutes} min without a client, ${quota.max_duration_minutes} min in all</dd></div>
      <div><dt>Profile storage</dt><dd>${usage.storage_mb} of ${quota.storage_mb} MB</dd></div>
    </dl>
    ${full && html`<p class="muted" id="quota-full">You run as many sessions as your quota allows: stop one to launch another.</p>`}
  </section>`;
}

function App() {
  const [hint] = useState(takeHint);
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [items, setItems] = useState<Session[]>([]);
  const [now, setNow] = useState(Date.now());
  const load = useCallback(async () => {
    try {
      const m = await call<Me>('GET', '/me');
      setMe(m);
      setItems((await call<{ items: Session[] }>('GET', '/sessions')).items);
      setNow(Date.now());
    } catch (err) {
      // Only a refused cookie signs the user out here; a busy or restarting server keeps the page.
      if (err instanceof CallError && err.info.status === 401) setMe(null);
      else setMe((m) => (m === undefined ? null : m));
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);
  useEffect(() => {
    if (!me) return;
    const t = setInterval(() => void load(), 5000);
    return () => clearInterval(t);
  }, [me, load]);

  if (me === undefined) return html`<main><p>Loading…</p></main>`;
  if (me === null) return html`<main><${SignIn} onDone=${load} hint=${hint} /></main>`;
  const signOut = async () => {
    await call('POST', '/logout').catch(() => undefined);
    setMe(null);
    setItems([]);
  };
  return html`<header><span class="brand">HackStream</span><span id="who">${me.username}</span><button id="sign-out" onClick=${signOut}>Sign out</button></header>
    <main><section class="card" aria-labelledby="launch-title"><h1 id="launch-title">Launch</h1><${Launch} onLaunched=${load} /></section>
    <section class="card" aria-labelledby="sessions-title"><h2 id="sessions-title">My sessions</h2><${Sessions} items=${items} now=${now} onChange=${load} /></section>
    <${Quota} me=${me} /></main>`;
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(html`<${App} />`, root);
}
