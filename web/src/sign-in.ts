import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { call, CallError, type Methods } from './api.js';
import { errorText } from './words.js';

/*
 * The sign-in card: the password form, a link per SSO provider (a redirect flow: the server
 * sends the browser to the provider and back, then sets the cookies), and the second factor's
 * code form when the password or the SSO sign-in asks for one.
 */
const html = htm.bind(h);

/** What the SSO callback left in the fragment: a second factor to enter, or why it failed. */
interface Hint {
  factor?: string;
  error?: string;
}

const SSO_ERRORS: Record<string, string> = {
  AUTH_FLOW_DENIED: 'The sign-in provider did not let you in, or your account here is disabled. Ask an administrator if this is unexpected.',
  AUTH_FLOW_STATE_INVALID: 'The sign-in took too long or was already used. Start it again.',
  SERVICE_UNAVAILABLE: 'The sign-in provider cannot be reached right now. Try again in a minute, or use your password.',
  RATE_LIMITED: 'Too many sign-ins were started from this address. Wait a minute and try again.',
};

/** Reads and clears the fragment the SSO callback redirected to (`#sso-error=…`, `#second-factor=…`). */
export function takeHint(): Hint {
  const q = new URLSearchParams(location.hash.slice(1));
  const hint: Hint = {};
  const factor = q.get('second-factor');
  const error = q.get('sso-error');
  if (factor && /^[a-z0-9-]{1,32}$/.test(factor)) hint.factor = factor;
  if (error) hint.error = SSO_ERRORS[error] ?? 'The single sign-on did not finish. Start it again, or use your password.';
  if (location.hash) history.replaceState(null, '', location.pathname);
  return hint;
}

export function SignIn(props: { onDone: () => void; hint: Hint }) {
  const [methods, setMethods] = useState<Methods | null>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  // An SSO sign-in's challenge id stays in its HttpOnly cookie: the form sends none.
  const [challenge, setChallenge] = useState<{ id?: string; factor: string } | null>(props.hint.factor ? { factor: props.hint.factor } : null);
  const [code, setCode] = useState('');
  const [error, setError] = useState(props.hint.error ?? '');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    call<Methods>('GET', '/methods').then(setMethods, () => setMethods({ password: true, flows: [] }));
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      if (challenge) await call('POST', '/login/second-factor', { ...(challenge.id ? { challenge_id: challenge.id } : {}), factor: challenge.factor, response: code });
      else await call('POST', '/login', { username, password });
      setPassword('');
      props.onDone();
    } catch (err) {
      const d = err instanceof CallError ? err.info.details : undefined;
      if (err instanceof CallError && err.info.code === 'AUTH_SECOND_FACTOR_REQUIRED' && typeof d?.challenge_id === 'string' && Array.isArray(d.factors)) {
        setChallenge({ id: d.challenge_id, factor: String(d.factors[0]) });
      } else {
        if (challenge && err instanceof CallError && err.info.code === 'AUTH_CHALLENGE_INVALID') setChallenge(null);
        setError(errorText(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const sso = (methods?.flows ?? []).filter((f) => f.redirect);
  return html`<section class="card" aria-labelledby="sign-in-title">
    <h1 id="sign-in-title">Sign in to HackStream</h1>
    <form onSubmit=${submit}>
      ${challenge
        ? html`<label for="code">Code from your authenticator (${challenge.factor})</label>
            <input id="code" autocomplete="one-time-code" inputmode="numeric" value=${code} onInput=${(e: Event) => setCode((e.target as HTMLInputElement).value)} required />`
        : html`<label for="username">Username</label>
            <input id="username" autocomplete="username" value=${username} onInput=${(e: Event) => setUsername((e.target as HTMLInputElement).value)} required />
            <label for="password">Password</label>
            <input id="password" type="password" autocomplete="current-password" value=${password} onInput=${(e: Event) => setPassword((e.target as HTMLInputElement).value)} required />`}
      <button id="sign-in" type="submit" disabled=${busy}>${challenge ? 'Verify' : 'Sign in'}</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
    ${!challenge && sso.length > 0 &&
    html`<div class="sso"><h2>Or sign in with</h2><ul>${sso.map(
      (f) => html`<li key=${f.id}><a class="button sso-link" data-flow=${f.id} href=${`/web/sso/${encodeURIComponent(f.id)}`}>${f.label}</a></li>`,
    )}</ul></div>`}
  </section>`;
}
