import https from 'node:https';
import tls from 'node:tls';

/** The subset of fetch openid-client calls (its `customFetch`). */
export type OidcFetch = (url: string, init: { body?: unknown; headers: Record<string, string>; method: string; redirect?: string; signal?: AbortSignal | null }) => Promise<Response>;

/** A provider answering more than this is refused (a hostile or broken OP cannot exhaust memory). */
const MAX_BODY = 1024 * 1024;

function bodyBytes(body: unknown): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new TypeError('unsupported request body');
}

/**
 * fetch over node:https, one connection per request, trusting the system CAs plus `extraCa`
 * (an issuer behind a private CA). Node's global fetch takes no CA option without undici's
 * dispatcher (not a dependency), and its pool keeps sockets past close(). Redirects are
 * never followed (openid-client asks for `manual`).
 */
export function nodeFetch(extraCa: string | undefined): OidcFetch {
  const ca = extraCa === undefined ? undefined : [...tls.rootCertificates, extraCa];
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const u = new URL(url);
      if (u.protocol !== 'https:') return reject(new TypeError(`refusing ${u.protocol} for ${u.host}`));
      const payload = bodyBytes(init.body);
      const headers = new Headers(init.headers);
      if (payload) headers.set('content-length', String(payload.length));
      const req = https.request(u, { method: init.method, ...(ca ? { ca } : {}), headers: Object.fromEntries(headers), agent: false, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) return res.destroy(new Error(`${u.host} answered more than ${MAX_BODY} bytes`));
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 502;
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) for (const one of Array.isArray(v) ? v : [v]) out.append(k, one);
          const nullBody = status === 204 || status === 304 || init.method === 'HEAD';
          resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers: out }));
        });
      });
      // Settled once the socket is closed, so a failed request leaves nothing open behind it.
      let failure: unknown;
      req.on('error', (err) => (failure ??= err));
      req.on('close', () => failure !== undefined && reject(failure));
      req.end(payload);
    });
}
