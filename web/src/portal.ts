import { h, render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { call, CallError, type Me, type Methods, type Session } from './api.js';

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

function errorText(err: unknown): string {
  return err instanceof CallError ? err.info.message : 'the server could not be reached';
}

function SignIn(props: { onDone: () => void }) {
  const [methods, setMethods] = useState<Methods | null>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [challenge, setChallenge] = useState<{ id: string; factor: string } | null>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    call<Methods>('GET', '/methods').then(setMethods, () => setMethods({ password: true, flows: [] }));
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      if (challenge) await call('POST', '/login/second-factor', { challengeId: challenge.id, factor: challenge.factor, response: code });
      else await call('POST', '/login', { username, password });
      setPassword('');
      props.onDone();
    } catch (err) {
      const d = err instanceof CallError ? err.info.details : undefined;
      if (err instanceof CallError && err.info.code === 'AUTH_SECOND_FACTOR_REQUIRED' && typeof d?.challengeId === 'string' && Array.isArray(d.factors)) {
        setChallenge({ id: d.challengeId, factor: String(d.factors[0]) });
      } else {
        if (challenge && err instanceof CallError && err.info.code === 'AUTH_CHALLENGE_INVALID') setChallenge(null);
        setError(errorText(err));
      }
    } finally {
      setBusy(false);
    }
  };

  return html`<section class="card">
    <h1>Sign in to HackStream</h1>
    <form onSubmit=${submit}>
      ${challenge
        ? html`<label>Code (${challenge.factor})<input id="code" autocomplete="one-time-code" inputmode="numeric" value=${code} onInput=${(e: Event) => setCode((e.target as HTMLInputElement).value)} required /></label>`
        : html`<label>Username<input id="username" autocomplete="username" value=${username} onInput=${(e: Event) => setUsername((e.target as HTMLInputElement).value)} required /></label>
            <label>Password<input id="password" type="password" autocomplete="current-password" value=${password} onInput=${(e: Event) => setPassword((e.target as HTMLInputElement).value)} required /></label>`}
      <button id="sign-in" type="submit" disabled=${busy}>${challenge ? 'Verify' : 'Sign in'}</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
    ${methods && methods.flows.length > 0 &&
    html`<p class="muted">Also offered by this server (from the CLI for now): ${methods.flows.map((f) => f.label).join(', ')}</p>`}
  </section>`;
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
      <option value="low">low (slow links)</option><option value="auto">auto</option><option value="high">high</option>
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
    <thead><tr><th>App</th><th>URL</th><th>Quality</th><th>State</th><th>Age</th><th></th></tr></thead>
    <tbody>${props.items.map(
      (s) => html`<tr key=${s.session_id} data-session=${s.session_id}>
        <td>${s.app}</td><td class="url">${s.url ?? ''}</td><td>${s.quality}</td>
        <td class="state">${s.state}</td><td>${age(s.created_at, props.now)}</td>
        <td>${LIVE.has(s.state) && html`<button class="open" onClick=${() => open(s.session_id)}>Open in browser</button>
          <button class="stop" onClick=${() => stop(s.session_id)}>Stop</button>`}</td>
      </tr>`,
    )}</tbody>
  </table>${error && html`<p class="error" role="alert">${error}</p>`}`;
}

function App() {
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

  if (me === undefined) return html`<p>Loading…</p>`;
  if (me === null) return html`<${SignIn} onDone=${load} />`;
  const signOut = async () => {
    await call('POST', '/logout').catch(() => undefined);
    setMe(null);
    setItems([]);
  };
  return html`<header><span>HackStream</span><span id="who">${me.username}</span><button id="sign-out" onClick=${signOut}>Sign out</button></header>
    <section class="card"><h2>Launch</h2><${Launch} onLaunched=${load} /></section>
    <section class="card"><h2>My sessions</h2><${Sessions} items=${items} now=${now} onChange=${load} /></section>`;
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(html`<${App} />`, root);
}
