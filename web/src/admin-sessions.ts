import { useCallback, useEffect, useState } from 'preact/hooks';
import { call } from './api.js';
import { age, errorText, html } from './admin-common.js';

/** Live sessions across the host: owner, state, age, client attached or not; stop one. */

interface AdminSession {
  session_id: string;
  user_id: string;
  username: string | null;
  state: string;
  app: string;
  url: string | null;
  created_at: string;
  client_connected: boolean;
}

export function SessionsPage() {
  const [items, setItems] = useState<AdminSession[] | null>(null);
  const [now, setNow] = useState(Date.now());
  const [status, setStatus] = useState('');
  const [error, setError] = useState('');
  const load = useCallback(async () => {
    try {
      setItems((await call<{ items: AdminSession[] }>('GET', '/admin/sessions')).items);
      setNow(Date.now());
    } catch (err) {
      setError(errorText(err));
    }
  }, []);
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 3000);
    return () => clearInterval(t);
  }, [load]);
  const stop = async (s: AdminSession) => {
    setError('');
    try {
      await call('POST', `/admin/sessions/${s.session_id}/stop`);
      setStatus(`Stopped the session of ${s.username ?? s.user_id}.`);
    } catch (err) {
      setError(errorText(err));
    }
    void load();
  };
  if (items === null) return html`<p>Loading…</p>`;
  return html`<p id="status" role="status" class="muted">${status}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <section class="card" aria-labelledby="sessions-title"><h2 id="sessions-title">Every user's live sessions</h2>
    <button type="button" id="refresh" onClick=${() => void load()}>Refresh</button>
    ${items.length === 0
      ? html`<p class="muted" id="no-sessions">No live sessions.</p>`
      : html`<table id="sessions">
      <thead><tr><th scope="col">Owner</th><th scope="col">App</th><th scope="col">URL</th><th scope="col">State</th><th scope="col">Client</th><th scope="col">Age</th><th scope="col">Actions</th></tr></thead>
      <tbody>${items.map(
        (s) => html`<tr key=${s.session_id} data-session=${s.session_id}>
          <td class="owner">${s.username ?? s.user_id}</td><td>${s.app}</td><td class="url">${s.url ?? ''}</td>
          <td class="state">${s.state}</td><td class="client">${s.client_connected ? 'connected' : 'none'}</td>
          <td>${age(s.created_at, now)}</td>
          <td><button type="button" class="stop" aria-label=${`Stop the session of ${s.username ?? s.user_id}`} disabled=${s.state === 'stopping'} onClick=${() => void stop(s)}>Stop</button></td>
        </tr>`,
      )}</tbody></table>`}
    </section>`;
}
