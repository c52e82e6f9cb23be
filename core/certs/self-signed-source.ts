import type { Logger } from '../../lib/log.js';
import { API_RENEW_BEFORE_MS, loadOrIssueApiCert, type ApiCert } from './api-cert.js';
import type { Ca } from './ca.js';
import { PairListeners } from './listeners.js';
import { renewalTime, retryDelay, runAt } from './schedule.js';
import type { CertificateSource, KeyPair } from './types.js';

const RETRY_MIN_MS = 60_000;
const RETRY_MAX_MS = 6 * 3_600_000;

/** tls.mode "self-signed": the CA-issued API cert, re-issued in place before it expires. */
export class SelfSignedSource implements CertificateSource {
  private readonly listeners: PairListeners;
  private cancel: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly certsDir: string,
    private readonly ca: Ca,
    private readonly publicHost: string,
    private readonly logger: Logger,
    private cert: ApiCert,
  ) {
    this.listeners = new PairListeners(logger);
  }

  /**
   * The API certificate followed by the CA's, so a client can pin the CA (which outlives
   * every API certificate it issues) and check the chain itself on first contact.
   */
  current(): KeyPair {
    return this.served(this.cert);
  }

  private served(cert: ApiCert): KeyPair {
    return { keyPem: cert.pair.keyPem, certPem: `${cert.pair.certPem.trimEnd()}\n${this.ca.certPem}` };
  }

  onChange(listener: (pair: KeyPair) => void): () => void {
    return this.listeners.add(listener);
  }

  /** Arms the renewal timer (unref'd: it never keeps the process alive). */
  start(): void {
    if (!this.closed && !this.cancel) this.schedule(renewalTime(this.cert.notBefore, this.cert.notAfter, API_RENEW_BEFORE_MS), 0);
  }

  private schedule(at: Date, failures: number): void {
    this.cancel = runAt(at, () => void this.renew(failures));
  }

  private async renew(failures: number): Promise<void> {
    try {
      const next = await loadOrIssueApiCert(this.certsDir, this.ca, this.publicHost, this.logger);
      if (this.closed) return;
      if (next.serial !== this.cert.serial) {
        this.cert = next;
        this.listeners.emit(this.served(next));
      }
      this.schedule(renewalTime(next.notBefore, next.notAfter, API_RENEW_BEFORE_MS), 0);
    } catch (err) {
      const delayMs = retryDelay(failures + 1, RETRY_MIN_MS, RETRY_MAX_MS);
      this.logger.error({ err, delayMs }, 'API certificate renewal failed');
      if (!this.closed) this.schedule(new Date(Date.now() + delayMs), failures + 1);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cancel?.();
    this.listeners.clear();
  }
}
