import { readFileSync } from 'node:fs';
import tls from 'node:tls';

/*
 * The system trust store, for servers whose certificate a public or company CA issued
 * (tls.mode "acme" or "files"): Node's bundled Mozilla roots, the system bundle
 * (SSL_CERT_FILE, else Debian's /etc/ssl/certs/ca-certificates.crt, which
 * update-ca-certificates writes) and NODE_EXTRA_CA_CERTS. Passing `ca` to tls.connect
 * replaces Node's own list, so all three are gathered here.
 */

const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

function readBundle(file: string | undefined): string[] {
  if (!file) return [];
  try {
    return [readFileSync(file, 'utf8')];
  } catch {
    return []; // an unreadable or missing bundle adds nothing
  }
}

export function systemCas(env: NodeJS.ProcessEnv = process.env): string[] {
  return [...tls.rootCertificates, ...readBundle(env.SSL_CERT_FILE || SYSTEM_BUNDLE), ...readBundle(env.NODE_EXTRA_CA_CERTS)];
}

let context: tls.SecureContext | undefined;

/**
 * A TLS context holding the system store, made once per process: parsing a few hundred CA
 * certificates at every connection would cost a weak client (a Pi Zero) noticeable time.
 */
export function systemContext(): tls.SecureContext {
  context ??= tls.createSecureContext({ ca: systemCas() });
  return context;
}

/**
 * Why the system store does not vouch for this connection (chain or name), or undefined when
 * it does. `socket` connected with `secureContext: systemContext()` (authorized is computed even when
 * rejectUnauthorized is false).
 */
export function systemTrustProblem(socket: tls.TLSSocket, host: string): string | undefined {
  if (!socket.authorized) return String(socket.authorizationError ?? 'not trusted');
  const err = tls.checkServerIdentity(host, socket.getPeerCertificate());
  return err ? err.message : undefined;
}
