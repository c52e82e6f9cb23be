import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { call } from './api.js';
import { errorText, html, QUOTA_FIELDS, QUOTA_LABELS, valueOf, type QuotaField, type UserView } from './admin-common.js';

/** Users: list, create, disable/enable, role, quota override, password or second-factor reset. */

function CreateUser(props: { onDone: (msg: string) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState('user');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const u = await call<UserView>('POST', '/admin/users', { username, password, role });
      setUsername('');
      setPassword('');
      props.onDone(`Created ${u.username}.`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return html`<form id="create-user" class="inline" onSubmit=${submit}>
    <label>Username<input id="new-username" autocomplete="off" value=${username} onInput=${(e: Event) => setUsername(valueOf(e))} required /></label>
    <label>Password<input id="new-password" type="password" autocomplete="new-password" value=${password} onInput=${(e: Event) => setPassword(valueOf(e))} required /></label>
    <label>Role<select id="new-role" value=${role} onChange=${(e: Event) => setRole(valueOf(e))}><option value="user">user</option><option value="admin">admin</option></select></label>
    <button type="submit" id="create">Create user</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

/** The editor of one user: role, quota override, password or second-factor reset. */
function EditUser(props: { user: UserView; onDone: (msg: string) => void; onClose: () => void }) {
  const u = props.user;
  const [role, setRole] = useState<string>(u.role);
  const [quota, setQuota] = useState<Record<QuotaField, string>>(() => {
    const q = {} as Record<QuotaField, string>;
    for (const f of QUOTA_FIELDS) q[f] = u.quota[f] === undefined ? '' : String(u.quota[f]);
    return q;
  });
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const save = async (body: Record<string, unknown>, msg: string) => {
    setError('');
    try {
      await call('POST', `/admin/users/${u.id}`, body);
      props.onDone(msg);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const resetSecondFactor = async () => {
    setError('');
    try {
      const { reset } = await call<{ reset: string[] }>('POST', `/admin/users/${u.id}/second-factor/reset`, {});
      props.onDone(reset.length ? `Second factor of ${u.username} removed (${reset.join(', ')}); they sign in with the password and enrol again.` : `${u.username} has no second factor to reset.`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const title = useRef<HTMLHeadingElement>(null);
  // Keyboard users land in the editor they opened.
  useEffect(() => title.current?.focus(), []);
  const saveQuota = () => {
    const q: Record<string, number | null> = {};
    for (const f of QUOTA_FIELDS) {
      const text = quota[f].trim();
      const n = Number(text);
      if (text !== '' && !Number.isFinite(n)) return setError(`${QUOTA_LABELS[f]}: a number, or empty for the role's default`);
      q[f] = text === '' ? null : n;
    }
    void save({ quota: q }, `Quota of ${u.username} saved.`);
  };
  return html`<section class="card" id="edit-user" aria-labelledby="edit-title">
    <h2 id="edit-title" tabindex="-1" ref=${title}>Edit ${u.username}</h2>
    <form class="inline" id="role-form" onSubmit=${(e: Event) => { e.preventDefault(); void save({ role }, `${u.username} is now ${role}.`); }}>
      <label>Role<select id="edit-role" value=${role} onChange=${(e: Event) => setRole(valueOf(e))}><option value="user">user</option><option value="admin">admin</option></select></label>
      <button type="submit">Save role</button>
    </form>
    <form id="quota-form" onSubmit=${(e: Event) => { e.preventDefault(); saveQuota(); }}>
      <fieldset><legend>Quota override (empty: the role's default)</legend>
      <div class="grid">${QUOTA_FIELDS.map((f) => html`<label>${QUOTA_LABELS[f]}<input id=${`quota-${f}`} inputmode="decimal" value=${quota[f]} onInput=${(e: Event) => { const v = valueOf(e); setQuota((q) => ({ ...q, [f]: v })); }} /></label>`)}</div>
      </fieldset>
      <button type="submit" id="save-quota">Save quota</button>
    </form>
    <form class="inline" id="password-form" onSubmit=${(e: Event) => { e.preventDefault(); void save({ password }, `Password of ${u.username} reset; their sessions were ended.`).then(() => setPassword('')); }}>
      <label>New password<input id="reset-password" type="password" autocomplete="new-password" value=${password} onInput=${(e: Event) => setPassword(valueOf(e))} required /></label>
      <button type="submit">Reset password</button>
    </form>
    <button type="button" id="reset-second-factor" onClick=${() => void resetSecondFactor()}>Reset second factor</button>
    <button type="button" onClick=${props.onClose}>Close</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </section>`;
}

export function UsersPage() {
  const [users, setUsers] = useState<UserView[]>([]);
  const [editing, setEditing] = useState<string | null>(null);
  const [status, setStatus] = useState('');
  const [error, setError] = useState('');
  const load = useCallback(async () => {
    try {
      setUsers((await call<{ items: UserView[] }>('GET', '/admin/users')).items);
    } catch (err) {
      setError(errorText(err));
    }
  }, []);
  useEffect(() => void load(), [load]);
  const done = (msg: string) => {
    setStatus(msg);
    void load();
  };
  const toggle = async (u: UserView) => {
    setError('');
    try {
      await call('POST', `/admin/users/${u.id}`, { disabled: !u.disabled });
      done(u.disabled ? `Enabled ${u.username}.` : `Disabled ${u.username}; their sessions were ended.`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const quotaText = (u: UserView) => QUOTA_FIELDS.filter((f) => u.quota[f] !== undefined).map((f) => `${QUOTA_LABELS[f]}: ${u.quota[f]}`).join(', ');
  const edited = users.find((u) => u.id === editing);
  return html`<section class="card" aria-labelledby="create-title"><h2 id="create-title">New user</h2><${CreateUser} onDone=${done} /></section>
    <p id="status" role="status" class="muted">${status}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <section class="card" aria-labelledby="users-title"><h2 id="users-title">Accounts</h2>
    <table id="users">
      <thead><tr><th scope="col">Username</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">Quota override</th><th scope="col">Source</th><th scope="col">Actions</th></tr></thead>
      <tbody>${users.map(
        (u) => html`<tr key=${u.id} data-user=${u.username}>
          <td class="username">${u.username}</td><td class="role">${u.role}</td>
          <td class="status">${u.disabled ? 'disabled' : 'enabled'}</td><td class="quota">${quotaText(u)}</td><td>${u.source ?? 'local'}</td>
          <td><button type="button" class="toggle" aria-label=${`${u.disabled ? 'Enable' : 'Disable'} ${u.username}`} onClick=${() => void toggle(u)}>${u.disabled ? 'Enable' : 'Disable'}</button>
            <button type="button" class="edit" aria-label=${`Edit ${u.username}`} onClick=${() => setEditing(u.id)}>Edit</button></td>
        </tr>`,
      )}</tbody>
    </table></section>
    ${edited && html`<${EditUser} key=${edited.id} user=${edited} onDone=${done} onClose=${() => setEditing(null)} />`}`;
}
