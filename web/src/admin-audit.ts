import { useCallback, useEffect, useState } from 'preact/hooks';
import { call } from './api.js';
import { errorText, html, query, valueOf, type UserView } from './admin-common.js';

/** Audit: filter by user, action and time; whether the hash chain verifies; CSV export. */

interface AuditItem {
  id: string;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  source_ip: string | null;
  result: string;
  details: Record<string, unknown>;
}

type ChainReport = { ok: true; rows: number; head: string } | { ok: false; rowId: string; reason: string; detail: string; rows: number };

interface Filters {
  user: string;
  action: string;
  from: string;
  to: string;
}

/** datetime-local (the browser's zone) to ISO 8601 UTC; empty stays empty. */
function iso(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function qs(f: Filters, cursor?: string): string {
  return query({ user: f.user.trim(), action: f.action.trim(), from: iso(f.from), to: iso(f.to), cursor });
}

function Chain() {
  const [report, setReport] = useState<ChainReport | null>(null);
  const [error, setError] = useState('');
  const check = useCallback(() => {
    setError('');
    call<ChainReport>('GET', '/admin/audit/verify').then(setReport, (err: unknown) => setError(errorText(err)));
  }, []);
  useEffect(check, [check]);
  return html`<section class="card" aria-labelledby="chain-title"><h2 id="chain-title">Hash chain</h2>
    <p id="chain" role="status" data-ok=${report ? String(report.ok) : ''}>${
      report === null
        ? error || 'Checking…'
        : report.ok
          ? `Verified: ${report.rows} rows chain correctly (head ${report.head.slice(0, 16)}…).`
          : `BROKEN at row ${report.rowId} (${report.reason}): ${report.detail}. ${report.rows} rows before it are sound.`
    }</p>
    <button type="button" id="verify" onClick=${check}>Check again</button>
  </section>`;
}

export function AuditPage() {
  const [filters, setFilters] = useState<Filters>({ user: '', action: '', from: '', to: '' });
  const [applied, setApplied] = useState<Filters>(filters);
  const [items, setItems] = useState<AuditItem[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [names, setNames] = useState<Map<string, string>>(new Map());
  const [error, setError] = useState('');
  const load = useCallback(async (f: Filters, cursor?: string) => {
    setError('');
    try {
      const page = await call<{ items: AuditItem[]; next_cursor: string | null }>('GET', `/admin/audit${qs(f, cursor)}`);
      setItems((old) => (cursor ? [...old, ...page.items] : page.items));
      setNext(page.next_cursor);
      setApplied(f);
    } catch (err) {
      setError(errorText(err));
    }
  }, []);
  useEffect(() => {
    void load(filters);
    call<{ items: UserView[] }>('GET', '/admin/users').then((r) => setNames(new Map(r.items.map((u) => [u.id, u.username]))), () => undefined);
  }, []);
  // An updater, not the render's \`filters\`: fields typed in quick succession (before a render)
  // would otherwise each start from the same stale filters and undo one another.
  const field = (k: keyof Filters) => (e: Event) => {
    const v = valueOf(e);
    setFilters((f) => ({ ...f, [k]: v }));
  };
  const who = (id: string | null) => (id === null ? '' : names.get(id) ?? id);
  return html`<${Chain} />
    <section class="card" aria-labelledby="filter-title"><h2 id="filter-title">Filter</h2>
    <form id="audit-filter" class="grid" onSubmit=${(e: Event) => { e.preventDefault(); void load(filters); }}>
      <label>User (name or id)<input id="filter-user" value=${filters.user} onInput=${field('user')} /></label>
      <label>Action<input id="filter-action" placeholder="user_updated" value=${filters.action} onInput=${field('action')} /></label>
      <label>From<input id="filter-from" type="datetime-local" step="1" value=${filters.from} onInput=${field('from')} /></label>
      <label>Until<input id="filter-to" type="datetime-local" step="1" value=${filters.to} onInput=${field('to')} /></label>
      <div><button type="submit" id="apply">Apply</button>
      <a id="export" class="button" href=${`/web/api/admin/audit.csv${qs(applied)}`} download="hackstream-audit.csv">Export CSV</a></div>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    </section>
    <section class="card" aria-labelledby="rows-title"><h2 id="rows-title">Rows (newest first)</h2>
    <p class="muted" id="row-count" role="status">${items.length} shown</p>
    <table id="audit">
      <thead><tr><th scope="col">#</th><th scope="col">Time (UTC)</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Result</th><th scope="col">Details</th></tr></thead>
      <tbody>${items.map(
        (i) => html`<tr key=${i.id} data-row=${i.id}>
          <td>${i.id}</td><td>${i.at.replace('T', ' ').replace('Z', '')}</td><td class="actor">${who(i.actor)}</td>
          <td class="action">${i.action}</td><td class="target">${who(i.target)}</td><td>${i.result}</td>
          <td class="details">${JSON.stringify(i.details)}</td>
        </tr>`,
      )}</tbody>
    </table>
    ${next && html`<button type="button" id="more" onClick=${() => void load(applied, next)}>Older rows</button>`}
    </section>`;
}
