import https from 'node:https';

/** Where a hostname is dialled: this address and port (TLS SNI and Host stay the URL's). */
export type HostMap = Readonly<Record<string, { address: string; port?: number }>>;

export interface Page {
  url: URL;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface Form {
  action: URL;
  method: string;
  fields: Record<string, string>;
  /** The `id` attribute, if any. */
  id: string | undefined;
}

/**
 * A browser as far as sign-in needs one: real HTTPS requests, cookies per host, redirects
 * followed by hand (across hosts), HTML forms read and submitted. For tests only.
 */
export class TestBrowser {
  private readonly jar = new Map<string, Map<string, string>>();

  constructor(
    private readonly ca: readonly string[],
    private readonly hosts: HostMap = {},
  ) {}

  request(method: string, url: URL, body?: URLSearchParams): Promise<Page> {
    const dial = this.hosts[url.hostname];
    const cookies = [...(this.jar.get(url.hostname) ?? new Map<string, string>())].map(([k, v]) => `${k}=${v}`).join('; ');
    const payload = body?.toString();
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: dial?.address ?? url.hostname,
          port: dial?.port ?? Number(url.port || 443),
          servername: url.hostname,
          path: `${url.pathname}${url.search}`,
          method,
          ca: [...this.ca],
          agent: false,
          headers: {
            host: url.host,
            accept: 'text/html,application/json',
            ...(cookies ? { cookie: cookies } : {}),
            ...(payload !== undefined ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          },
        },
        (res) => {
          this.keepCookies(url.hostname, res.headers['set-cookie']);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => resolve({ url, status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** GET (or POST a form) and follow redirects until a non-redirect or `stopAt` says stop. */
  async go(url: URL, opts: { form?: URLSearchParams; stopAt?: (u: URL) => boolean } = {}): Promise<Page> {
    let page = await this.request(opts.form ? 'POST' : 'GET', url, opts.form);
    for (let hops = 0; hops < 20; hops++) {
      const location = page.headers.location;
      if (page.status < 300 || page.status > 399 || typeof location !== 'string') return page;
      const next = new URL(location, page.url);
      if (opts.stopAt?.(next)) return { url: next, status: 0, headers: {}, text: '' };
      page = await this.request('GET', next);
    }
    throw new Error(`more than 20 redirects from ${url.href}`);
  }

  /** Every form on a page with its fields (hidden and prefilled inputs). */
  static forms(page: Page): Form[] {
    const out: Form[] = [];
    for (const m of page.text.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
      const attrs = m[1] ?? '';
      const fields: Record<string, string> = {};
      for (const input of (m[2] ?? '').matchAll(/<input\b([^>]*)>/g)) {
        const name = attr(input[1] ?? '', 'name');
        if (name !== undefined) fields[name] = decode(attr(input[1] ?? '', 'value') ?? '');
      }
      out.push({ action: new URL(decode(attr(attrs, 'action') ?? ''), page.url), method: (attr(attrs, 'method') ?? 'get').toUpperCase(), fields, id: attr(attrs, 'id') });
    }
    return out;
  }

  private keepCookies(host: string, setCookie: string[] | undefined): void {
    const jar = this.jar.get(host) ?? new Map<string, string>();
    for (const line of setCookie ?? []) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const [name, value] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
      // An expired cookie is how servers delete one.
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    this.jar.set(host, jar);
  }
}

function attr(attrs: string, name: string): string | undefined {
  return new RegExp(`\\b${name}="([^"]*)"`).exec(attrs)?.[1];
}

function decode(s: string): string {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#x2F;/g, '/').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

/** The bits of oidc-provider's API used here (it ships no types). */
interface OidcProvider {
  callback(): (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
  use(mw: (ctx: { path: string; method: string; body: unknown; status: number }, next: () => Promise<void>) => Promise<void>): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
}
type ProviderCtor = new (issuer: string, config: Record<string, unknown>) => OidcProvider;

export interface TestAccount {
  /** Claims beside `sub` (the account id): preferred_username, groups… */
  readonly claims: Readonly<Record<string, unknown>>;
}

export interface TestOp {
  /** https://localhost:<port> */
  readonly issuer: string;
  /** The test CA (PEM) the OP's certificate is signed by; also written to `caFile`. */
  readonly ca: string;
  readonly caFile: string;
  readonly client: { readonly clientId: string; readonly clientSecret: string };
  /** Signs in as `account` on an OP page reached by `browser`, consenting or aborting. */
  interact(browser: TestBrowser, page: Page, account: string, o?: { stopAt?: (u: URL) => boolean; abort?: boolean }): Promise<Page>;
  /** Approves (or denies) a device code through the OP's verification pages. */
  approveDevice(browser: TestBrowser, verificationUriComplete: string, account: string, o?: { deny?: boolean }): Promise<Page>;
  close(): Promise<void>;
}

/** A test CA and a certificate for `localhost` signed by it, PEM files in `dir`. */
export async function localhostTls(dir: string): Promise<{ ca: string; caFile: string; cert: string; key: string }> {
  const { BACKDATE_MS, loadOrCreateCa, signServerCert } = await import('../../core/certs/ca.js');
  const { generateRsaKey } = await import('../../core/certs/keys.js');
  const { silentLogger } = await import('../../lib/log.js');
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  await mkdir(join(dir, 'op-ca'), { recursive: true, mode: 0o700 });
  const ca = await loadOrCreateCa(join(dir, 'op-ca'), silentLogger());
  const key = await generateRsaKey(2048);
  const now = Date.now();
  const cert = signServerCert(ca, { hostname: 'localhost', publicKeyPem: key.publicKeyPem, notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + 86_400_000) });
  const caFile = join(dir, 'op-ca.pem');
  await writeFile(caFile, ca.certPem);
  return { ca: ca.certPem, caFile, cert, key: key.privateKeyPem };
}

/**
 * A real OpenID provider (panva's oidc-provider, the certified one) over HTTPS on
 * localhost, in this process: one confidential client with `redirectUris`, the device flow
 * on, the built-in login and consent pages (any password), claims in the ID token.
 */
export async function startOp(o: {
  dir: string;
  redirectUris: string[];
  accounts: Readonly<Record<string, TestAccount>>;
  /** The `interval` the device authorization answer carries (seconds; oidc-provider sends none). */
  deviceIntervalS?: number;
  /** Device code lifetime (seconds). */
  deviceTtlS?: number;
}): Promise<TestOp> {
  const { createServer } = await import('node:https');
  const { generateKeyPairSync, randomBytes } = await import('node:crypto');
  const tls = await localhostTls(o.dir);
  const server = createServer({ cert: tls.cert, key: tls.key });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const issuer = `https://localhost:${port}`;
  const client = { clientId: 'hackstream', clientSecret: randomBytes(24).toString('base64url') };
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const specifier = 'oidc-provider';
  const Provider = ((await import(specifier)) as { default: ProviderCtor }).default;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: client.clientId,
        client_secret: client.clientSecret,
        redirect_uris: o.redirectUris,
        grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [{ ...jwk, kid: 'test-key', use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
    // Claims asked for by scope go into the ID token, not only userinfo.
    conformIdTokenClaims: false,
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    ttl: { DeviceCode: o.deviceTtlS ?? 600 },
    findAccount: (_ctx: unknown, id: string) => {
      const account = o.accounts[id];
      return account ? { accountId: id, claims: () => ({ sub: id, ...account.claims }) } : undefined;
    },
  });
  if (o.deviceIntervalS !== undefined) {
    const interval = o.deviceIntervalS;
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.path === '/device/auth' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) ctx.body = { ...ctx.body, interval };
    });
  }
  server.on('request', provider.callback());
  return {
    issuer,
    ca: tls.ca,
    caFile: tls.caFile,
    client,
    interact: (browser, page, account, opts = {}) => interact(browser, page, account, opts),
    async approveDevice(browser, uri, account, opts = {}) {
      let page = await browser.go(new URL(uri));
      for (let step = 0; step < 8; step++) {
        const form = TestBrowser.forms(page)[0];
        if (!form) return page;
        if (form.id === 'op.deviceConfirmForm' && opts.deny) return submit(browser, form, { abort: 'yes' });
        if (form.id === 'op.deviceConfirmForm') page = await submit(browser, form, {});
        else if (form.fields.prompt === 'login' || form.fields.prompt === 'consent') page = await interact(browser, page, account, {});
        // The user code form, or a page a browser's script submits by itself.
        else page = await submit(browser, form, {});
      }
      throw new Error(`the device approval did not finish: ${page.url.href} ${page.status} ${page.text.replace(/<style>[\s\S]*?<\/style>/, "").slice(0, 1500)}`);
    },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

function submit(browser: TestBrowser, form: Form, extra: Record<string, string>, stopAt?: (u: URL) => boolean): Promise<Page> {
  return browser.go(form.action, { form: new URLSearchParams({ ...form.fields, ...extra }), ...(stopAt ? { stopAt } : {}) });
}

/** The dev interactions: a login form (any password), then a consent form; stops where `stopAt` says. */
async function interact(browser: TestBrowser, page: Page, account: string, o: { stopAt?: (u: URL) => boolean; abort?: boolean }): Promise<Page> {
  for (let step = 0; step < 4; step++) {
    if (page.status === 0) return page;
    if (o.abort) {
      const abort = /href="([^"]*\/abort)"/.exec(page.text)?.[1];
      if (!abort) throw new Error(`no abort link on ${page.url.href}`);
      return browser.go(new URL(abort, page.url), o.stopAt ? { stopAt: o.stopAt } : {});
    }
    const form = TestBrowser.forms(page).find((f) => f.fields.prompt === 'login' || f.fields.prompt === 'consent');
    if (!form) return page;
    const fields: Record<string, string> = form.fields.prompt === 'login' ? { login: account, password: 'any' } : {};
    page = await submit(browser, form, fields, o.stopAt);
  }
  return page;
}
