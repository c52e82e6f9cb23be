import net from 'node:net';
import tls from 'node:tls';
import { Client, InvalidCredentialsError, SizeLimitExceededError, type Entry } from 'ldapts';

/*
 * Our small interface over ldapts: one connection per login attempt, over TLS (LDAPS or
 * StartTLS) unless the operator allowed plain LDAP. ldapts reconnects transparently when a
 * connection drops, which after StartTLS would be a fresh plain connection carrying the
 * user's password: the factories below allow exactly one socket, so a reconnect fails.
 */

export interface DirectorySettings {
  readonly url: string;
  readonly startTls: boolean;
  /** PEM CA bundle; undefined: Node's bundled CAs. */
  readonly ca: Buffer | undefined;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
}

export interface SearchRequest {
  readonly base: string;
  readonly scope: 'sub' | 'one' | 'base';
  readonly filter: string;
  readonly attributes: readonly string[];
  /** Returned as Buffer (binary ids such as objectGUID). */
  readonly binary?: readonly string[];
  /** 0: no limit. More matches than this throw TooManyEntries. */
  readonly sizeLimit: number;
}

/** The directory refused the credentials (RFC 4511 invalidCredentials). */
export class WrongCredentials extends Error {
  override readonly name = 'WrongCredentials';
}

/** A search matched more entries than its size limit. */
export class TooManyEntries extends Error {
  override readonly name = 'TooManyEntries';
}

export interface DirectoryConnection {
  bind(dn: string, password: string): Promise<void>;
  search(request: SearchRequest): Promise<Entry[]>;
  /** Drops the connection at once (and any operation in flight). Idempotent. */
  close(): void;
}

/**
 * A connection; with StartTLS, connected and upgraded (rejects when that fails or takes too
 * long). `signal` drops every socket at once, even mid-handshake (ldapts has no timeout on
 * the StartTLS handshake itself).
 */
export async function connect(settings: DirectorySettings, signal: AbortSignal): Promise<DirectoryConnection> {
  const url = new URL(settings.url);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const tlsOptions: tls.ConnectionOptions = {
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    ...(settings.ca ? { ca: settings.ca } : {}),
    // SNI takes names only; the certificate is checked against the host either way.
    ...(net.isIP(host) ? {} : { servername: host }),
  };
  const sockets: net.Socket[] = [];
  let closed = false;
  const admit = <S extends net.Socket>(socket: S): S => {
    sockets.push(socket);
    return socket;
  };
  /** The first socket of the attempt, or for StartTLS its TLS layer over that socket; nothing else. */
  const single = (make: () => net.Socket, upgrade: boolean): net.Socket => {
    if (closed || sockets.length > (upgrade ? 1 : 0)) throw new Error('directory connection lost; not reconnecting within one attempt');
    return admit(make());
  };
  const client = new Client({
    url: settings.url,
    connectTimeout: settings.connectTimeoutMs,
    timeout: settings.timeoutMs,
    // No `tlsOptions` here: ldapts would then speak TLS at once even on an ldap:// URL (breaking
    // StartTLS). The factory adds them; ldapts calls it with (port, host) for LDAPS and with
    // ({ socket }) for the StartTLS upgrade.
    strictDN: true,
    createConnection: ((port: number, h: string) => single(() => net.connect(port, h), false)) as typeof net.connect,
    createSecureConnection: ((...args: [number, string, tls.ConnectionOptions?] | [tls.ConnectionOptions]) =>
      args.length === 1
        ? single(() => tls.connect({ ...args[0], ...tlsOptions, host }), true)
        : single(() => tls.connect({ port: args[0], host: args[1], ...tlsOptions }), false)) as typeof tls.connect,
  });
  const close = () => {
    closed = true;
    signal.removeEventListener('abort', close);
    for (const s of sockets) {
      s.on('error', () => {});
      s.destroy();
    }
  };
  signal.addEventListener('abort', close);
  if (signal.aborted) close();
  // LDAPS and (allowed) plain LDAP connect with the first operation; StartTLS upgrades here.
  if (settings.startTls) {
    try {
      // ldapts's upgrade waits for 'secureConnect' or 'error', not 'close': a destroyed socket alone would leave it pending.
      await Promise.race([client.startTLS({}), aborted(signal)]);
    } catch (err) {
      close();
      throw err;
    }
  }
  return {
    async bind(dn, password) {
      // An empty password is an unauthenticated bind (RFC 4513 §5.1.2): "success" proves nothing.
      if (password === '') throw new WrongCredentials('empty password');
      try {
        await client.bind(dn, password);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) throw new WrongCredentials('invalid credentials', { cause: err });
        throw err;
      }
    },
    async search(r) {
      try {
        const { searchEntries } = await client.search(r.base, {
          scope: r.scope,
          filter: r.filter,
          attributes: [...r.attributes],
          explicitBufferAttributes: [...(r.binary ?? [])],
          // One more than allowed: ldapts hands back the partial result of a size-limited search
          // as a success, so "more than allowed" is only visible as an extra entry.
          sizeLimit: r.sizeLimit > 0 ? r.sizeLimit + 1 : 0,
          timeLimit: Math.ceil(settings.timeoutMs / 1000),
          derefAliases: 'never',
        });
        if (r.sizeLimit > 0 && searchEntries.length > r.sizeLimit) throw new TooManyEntries(`more than ${r.sizeLimit} entries`);
        return searchEntries;
      } catch (err) {
        if (err instanceof SizeLimitExceededError) throw new TooManyEntries(`more than ${r.sizeLimit} entries`, { cause: err });
        throw err;
      }
    },
    close,
  };
}


/** Rejects once `signal` aborts (never resolves). */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new Error('attempt abandoned'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}
