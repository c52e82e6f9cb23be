import { join, resolve } from 'node:path';
import type { TlsConfig } from '../config/schema.js';
import type { Logger } from '../../lib/log.js';
import { MemoryChallengeStore } from './acme-challenges.js';
import { AcmeSource } from './acme-source.js';
import { loadOrIssueApiCert } from './api-cert.js';
import { ensurePrivateDir } from './atomic-file.js';
import { loadOrCreateCa, type Ca } from './ca.js';
import { FileSource } from './file-source.js';
import { generateRsaKey, KeyPool } from './keys.js';
import { assertCertHostname } from './hostname.js';
import { SelfSignedSource } from './self-signed-source.js';
import { issueSessionCert } from './session-cert.js';
import type { CertificateSource, IssuedCert } from './types.js';

export type { AcmeChallengeStore, CertificateSource, IssuedCert, KeyPair } from './types.js';

export interface CertificatesOptions {
  /** `<dataDir>/certs/` holds everything (see certs/README.md). */
  dataDir: string;
  publicHost: string;
  tls: TlsConfig;
  logger: Logger;
}

/** Everything the gateway and the session manager need from the certificate layer. */
export interface Certificates {
  /** The HackStream CA that clients pin. */
  ca: { certPem: string };
  /** The API hostname's certificate, per tls.mode; install `current()` and follow `onChange`. */
  api: CertificateSource;
  /** TLS-ALPN-01 challenge certs (only ever non-empty in tls.mode "acme"). */
  acmeChallenges: MemoryChallengeStore;
  /** A short-lived cert + key for a session hostname, signed by the CA. Rejects non-normalised hostnames. */
  issueSessionCert(hostname: string): Promise<IssuedCert>;
  /** Begins ACME ordering and renewal timers; call once the gateway listens (TLS-ALPN-01 needs the port). */
  start(): void;
  close(): Promise<void>;
}

/** Session keys kept ready: enough for a burst of launches while the pool refills. */
const SESSION_KEY_POOL = 4;

/** Loads or creates the CA and the API certificate source for the configured tls.mode. */
export async function setupCertificates(opts: CertificatesOptions): Promise<Certificates> {
  const { tls, logger, publicHost } = opts;
  assertCertHostname(publicHost, 'publicHost');
  const certsDir = join(resolve(opts.dataDir), 'certs');
  await ensurePrivateDir(certsDir, logger);
  const ca = await loadOrCreateCa(certsDir, logger);
  const challenges = new MemoryChallengeStore();
  const api = await openApiSource(certsDir, publicHost, tls, challenges, logger, ca);
  const sessionKeys = new KeyPool(SESSION_KEY_POOL, () => generateRsaKey(2048));
  return {
    ca: { certPem: ca.certPem },
    api,
    acmeChallenges: challenges,
    issueSessionCert: (hostname) => issueSessionCert(ca, hostname, tls.sessionCertTtlHours, () => sessionKeys.take()),
    start: () => api.start?.(),
    close: () => {
      sessionKeys.close();
      return api.close();
    },
  };
}

async function openApiSource(
  certsDir: string,
  publicHost: string,
  tls: TlsConfig,
  challenges: MemoryChallengeStore,
  logger: Logger,
  ca: Ca,
): Promise<CertificateSource & { start?(): void }> {
  if (tls.mode === 'files') {
    if (!tls.certFile || !tls.keyFile) throw new Error('tls.mode "files" needs both tls.certFile and tls.keyFile');
    return FileSource.open({ certFile: resolve(tls.certFile), keyFile: resolve(tls.keyFile), publicHost, logger });
  }
  const selfSigned = async (): Promise<SelfSignedSource> =>
    new SelfSignedSource(certsDir, ca, publicHost, logger, await loadOrIssueApiCert(certsDir, ca, publicHost, logger));
  if (tls.mode === 'acme') {
    if (!tls.acme) throw new Error('tls.mode "acme" needs tls.acme.directoryUrl');
    return AcmeSource.open({ certsDir, publicHost, acme: tls.acme, fallback: await selfSigned(), challenges, logger });
  }
  return selfSigned();
}
