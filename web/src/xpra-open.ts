import { presetOf, XPRA_PRESETS, type Preset } from './xpra-quality.js';

/*
 * Opens one session in xpra's HTML5 client. The session id comes from the fragment
 * (/xpra/session.html#<id>); the one-time connect token is fetched here, with the portal's
 * cookie and CSRF header, and handed to the client as its password: never in a URL, the
 * history or a log. The WebSocket goes to this host at /web/ws/<id>, where the edge checks
 * the owner and relays it to the session's xpra over TLS.
 */

interface XpraClientLike {
  debug_categories: string[];
  remote_logging: boolean;
  sharing: boolean;
  insecure: boolean;
  clipboard_enabled: boolean;
  printing: boolean;
  file_transfer: boolean;
  bandwidth_limit: number;
  steal: boolean;
  reconnect: boolean;
  swap_keys: boolean;
  audio_enabled: boolean;
  username: string;
  password: string;
  host: string;
  port: number;
  ssl: boolean;
  path: string;
  connected: boolean;
  capabilities: Record<string, unknown>;
  enable_encoding(encoding: string): void;
  _make_hello(): void;
  init(ignoreAudioBlacklist: boolean): void;
  connect(): void;
  on_connection_progress(state: string, details: string, progress: number): void;
  callback_close(reason?: string): void;
  on_connect(): void;
}

declare const XpraClient: new (container: string) => XpraClientLike;

/** The session's quality preset: the encodings offered and the hello's quality and speed. */
function applyPreset(client: XpraClientLike, quality: Preset): void {
  const { encodings, caps } = XPRA_PRESETS[quality];
  for (const e of encodings) client.enable_encoding(e);
  const makeHello = client._make_hello.bind(client);
  client._make_hello = () => {
    makeHello();
    Object.assign(client.capabilities, caps);
  };
  document.documentElement.dataset.quality = quality;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function showStatus(text: string, done = false): void {
  const el = document.getElementById('hs-status');
  if (!el) return;
  el.textContent = text;
  el.dataset.state = done ? 'connected' : text.startsWith('Disconnected') || text.startsWith('Cannot') ? 'closed' : 'connecting';
  el.classList.toggle('hidden', done);
}

async function connectToken(id: string): Promise<{ token: string; quality: Preset }> {
  const res = await fetch(`/web/api/sessions/${id}/connect`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'x-hackstream-csrf': '1', accept: 'application/json' },
  });
  const body = (await res.json().catch(() => ({}))) as { token?: unknown; quality?: unknown; error?: { message?: string } };
  if (!res.ok || typeof body.token !== 'string') throw new Error(body.error?.message ?? `the server answered ${res.status}`);
  return { token: body.token, quality: presetOf(body.quality) };
}

/**
 * xpra's window decorations carry images without alt text (the window icon, the minimise,
 * maximise and close buttons): name the buttons, mark the icon decorative, as windows appear.
 */
function labelDecorations(): void {
  const names: Record<string, string> = { minimize: 'Minimise window', maximize: 'Maximise window', close: 'Close window' };
  const fix = () => {
    for (const img of document.querySelectorAll<HTMLImageElement>('#screen img:not([alt])')) {
      const kind = /^(minimize|maximize|close)\d/.exec(img.parentElement?.id ?? '')?.[1];
      img.alt = kind ? (names[kind] ?? '') : '';
    }
  };
  const screen = document.getElementById('screen');
  if (screen) new MutationObserver(fix).observe(screen, { childList: true, subtree: true });
}

async function main(): Promise<void> {
  labelDecorations();
  const id = location.hash.slice(1).toLowerCase();
  if (!UUID.test(id)) {
    showStatus('Cannot open: no session in this link');
    return;
  }
  document.title = `HackStream session ${id.slice(0, 8)}`;
  let token: string;
  let quality: Preset;
  try {
    ({ token, quality } = await connectToken(id));
  } catch (err) {
    showStatus(`Cannot open: ${(err as Error).message}`);
    return;
  }
  const client = new XpraClient('screen');
  (window as unknown as { client: XpraClientLike }).client = client;
  Object.assign(client, {
    debug_categories: [],
    remote_logging: false,
    sharing: false,
    insecure: false,
    // xpra 3.1 uses navigator.clipboard (the browser asks the user once); the session's
    // policy.clipboard decides on the server side.
    clipboard_enabled: true,
    printing: false,
    file_transfer: false,
    bandwidth_limit: 0,
    steal: true,
    reconnect: false,
    swap_keys: false,
    audio_enabled: false,
  });
  client.on_connection_progress = (state) => showStatus(state);
  client.callback_close = (reason) => showStatus(`Disconnected: ${reason ?? 'unknown reason'}`);
  const onConnect = client.on_connect.bind(client);
  client.on_connect = () => {
    onConnect();
  };
  client.username = '';
  client.password = token;
  client.init(false);
  applyPreset(client, quality);
  client.host = location.hostname;
  client.port = Number(location.port || 443);
  client.ssl = true;
  client.path = `/web/ws/${id}`;
  client.connect();
}

window.addEventListener('load', () => void main());
export {};
