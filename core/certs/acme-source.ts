import { readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { Client, axios as acmeHttp, crypto as acmeCrypto, setLogger, type Authorization } from 'acme-client';
import type { Logger } from '../../lib/log.js';
import type { TlsConfig } from '../config/schema.js';
import type { ApiCert } from './api-cert.js';
import { MemoryChallengeStore } from './acme-challenges.js';
import { PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, ensurePrivateDir, readIfExists, writeFileAtomic } from './atomic-file.js';
import { generateEcKey } from './keys.js';
import { PairListeners } from './listeners.js';
import { renewalTime, retryDelay, runAt } from './schedule.js';
import type { CertificateSource, KeyPair } from './types.js';
import { namesHost, parseLeaf, parsePrivateKey, summarize } from './x509.js';

export type AcmeConfig = NonNullable<TlsConfig['acme']>;

export interface AcmeSourceOptions {
  certsDir: string;
  publicHost: string;
  acme: AcmeConfig;
  /** Served until the first ACME certificate exists (the CA-issued API cert); started and closed with this source. */
  fallback: CertificateSource & { start(): void };
  challenges: MemoryChallengeStore;
  logger: Logger;
  /** First retry delay after a failed order; doubles up to retryMaxMs. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

const DAY_MS = 86_400_000;
/** How long close() waits for an order in flight (acme-client cannot be aborted). */
const CLOSE_WAIT_MS = 5_000;

/**
 * tls.mode "acme": the API cert obtained and renewed from an ACME server with TLS-ALPN-01 on
 * the gateway's own port. Files under `certs/acme/`: account.key, api.crt (full chain), api.key.
 */
export class AcmeSource implements CertificateSource {
  private readonly listeners: PairListeners;
  private cert: ApiCert | undefined;
  private cancel: (() => void) | undefined;
  private inflight: Promise<void> | undefined;
  private started = false;
  private closed = false;
  private readonly unsubscribeFallback: () => void;

  private constructor(
    private readonly opts: AcmeSourceOptions,
    private readonly dir: string,
    private readonly caPem: string | undefined,
    stored: ApiCert | undefined,
  ) {
    this.cert = stored;
    this.listeners = new PairListeners(opts.logger);
    this.unsubscribeFallback = opts.fallback.onChange((pair) => {
      if (!this.cert) this.listeners.emit(pair);
    });
  }

  static async open(opts: AcmeSourceOptions): Promise<AcmeSource> {
    const dir = join(opts.certsDir, 'acme');
    await ensurePrivateDir(dir, opts.logger);
    const caPem = opts.acme.caFile === undefined ? undefined : await readCaFile(opts.acme.caFile);
    const stored = await loadStored(dir, opts.publicHost, opts.logger);
    setLogger((detail) => opts.logger.debug({ detail }, 'acme-client'));
    return new AcmeSource(opts, dir, caPem, stored);
  }

  current(): KeyPair {
    return this.cert?.pair ?? this.opts.fallback.current();
  }

  onChange(listener: (pair: KeyPair) => void): () => void {
    return this.listeners.add(listener);
  }

  /** Orders now if no ACME certificate exists (or it is due), otherwise schedules the renewal. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.opts.fallback.start();
    this.scheduleRenewal();
  }

  private scheduleRenewal(): void {
    const at = this.cert ? this.renewAt(this.cert) : new Date();
    if (this.cert) this.opts.logger.info({ serial: this.cert.serial, renewAt: at }, 'ACME renewal scheduled');
    this.cancel = runAt(at, () => this.run(0));
  }

  private renewAt(cert: ApiCert): Date {
    return renewalTime(cert.notBefore, cert.notAfter, this.opts.acme.renewBeforeDays * DAY_MS);
  }

  private run(failures: number): void {
    if (this.closed) return;
    this.inflight = this.order().then(
      (cert) => {
        if (this.closed) return;
        this.cert = cert;
        this.listeners.emit(cert.pair);
        this.scheduleRenewal();
      },
      (err: unknown) => {
        if (this.closed) return;
        const delayMs = retryDelay(failures + 1, this.opts.retryMinMs ?? 60_000, this.opts.retryMaxMs ?? 6 * 3_600_000);
        // The message only: acme-client's HTTP errors carry whole request configs (agents, JWS bodies).
        const reason = err instanceof Error ? err.message : String(err);
        this.opts.logger.error({ reason, attempt: failures + 1, retryInMs: delayMs }, 'ACME order failed');
        this.cancel = runAt(new Date(Date.now() + delayMs), () => this.run(failures + 1));
      },
    );
  }

  private async order(): Promise<ApiCert> {
    const { publicHost, acme, logger } = this.opts;
    // The EAB key id may be logged, never its HMAC key.
    logger.info({ publicHost, directoryUrl: acme.directoryUrl, ...(acme.externalAccountBinding ? { eabKid: acme.externalAccountBinding.kid } : {}) }, 'ACME order started');
    this.configureHttp();
    const client = new Client({
      directoryUrl: acme.directoryUrl,
      accountKey: await this.accountKey(),
      ...(acme.externalAccountBinding ? { externalAccountBinding: { kid: acme.externalAccountBinding.kid, hmacKey: acme.externalAccountBinding.hmacKey } } : {}),
      // acme-client polls pending challenges/orders with this backoff (its 5 s default minimum makes every order slow).
      backoffMin: 1_000,
      backoffMax: 10_000,
      backoffAttempts: 10,
    });
    await this.ensureAccount(client);
    const key = await generateEcKey();
    const [, csr] = await acmeCrypto.createCsr({ commonName: publicHost, altNames: [publicHost] }, key.privateKeyPem);
    const chainPem = await client.auto({
      csr,
      challengePriority: ['tls-alpn-01'],
      // acme-client's own check dials <host>:443, which is not necessarily our port; the CA checks anyway.
      skipChallengeVerification: true,
      challengeCreateFn: (authz, challenge, keyAuthorization) => this.addChallenge(authz, challenge.type, keyAuthorization),
      challengeRemoveFn: async (authz) => this.opts.challenges.delete(authz.identifier.value),
    });
    const cert = checkIssued(chainPem, key.privateKeyPem, publicHost);
    await writeFileAtomic(join(this.dir, 'api.key'), key.privateKeyPem, PRIVATE_FILE_MODE);
    await writeFileAtomic(join(this.dir, 'api.crt'), chainPem, PUBLIC_FILE_MODE);
    logger.info({ serial: cert.serial, notAfter: cert.notAfter, renewAt: this.renewAt(cert) }, 'ACME certificate obtained');
    return cert;
  }

  /**
   * Finds the account of our key, or registers it. (auto() would re-send termsOfServiceAgreed
   * as an account update on every renewal, which servers such as pebble reject as empty.) The
   * registration carries the External Account Binding when one is configured (acme-client
   * signs it with the HMAC key); a CA that requires one refuses an account without it.
   */
  private async ensureAccount(client: Client): Promise<void> {
    try {
      await client.createAccount({ onlyReturnExisting: true });
    } catch {
      const { email, externalAccountBinding } = this.opts.acme;
      try {
        await client.createAccount({ termsOfServiceAgreed: true, ...(email === undefined ? {} : { contact: [`mailto:${email}`] }) });
      } catch (err) {
        const said = err instanceof Error ? err.message : String(err);
        if (externalAccountBinding === undefined && /externalAccount/i.test(said)) {
          throw new Error(`the ACME server requires External Account Binding: set tls.acme.externalAccountBinding (the key id and HMAC key your CA gave you); it said: ${said}`, { cause: err });
        }
        throw err;
      }
      this.opts.logger.info({ directoryUrl: this.opts.acme.directoryUrl }, 'ACME account registered');
    }
  }

  private async addChallenge(authz: Authorization, type: string, keyAuthorization: string): Promise<void> {
    const hostname = authz.identifier.value;
    if (type !== 'tls-alpn-01') throw new Error(`the ACME server offers no tls-alpn-01 challenge for ${hostname}`);
    const key = await generateEcKey();
    const [, certPem] = await acmeCrypto.createAlpnCertificate(authz, keyAuthorization, key.privateKeyPem);
    this.opts.challenges.set(hostname, { certPem: certPem.toString(), keyPem: key.privateKeyPem });
    this.opts.logger.info({ hostname }, 'ACME challenge ready');
  }

  /** acme-client talks through one shared axios instance; its defaults are the only hook. */
  private configureHttp(): void {
    acmeHttp.defaults.timeout = 30_000;
    acmeHttp.defaults.httpsAgent = this.caPem === undefined ? undefined : new Agent({ ca: [...rootCertificates, this.caPem] });
  }

  private async accountKey(): Promise<string> {
    const file = join(this.dir, 'account.key');
    const existing = await readIfExists(file);
    if (existing !== undefined) {
      try {
        parsePrivateKey(existing);
      } catch (err) {
        throw new Error(`${file}: ${(err as Error).message}`, { cause: err });
      }
      return existing;
    }
    const { privateKeyPem } = await generateEcKey();
    await writeFileAtomic(file, privateKeyPem, PRIVATE_FILE_MODE);
    this.opts.logger.info({ file }, 'ACME account key created');
    return privateKeyPem;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cancel?.();
    this.unsubscribeFallback();
    this.listeners.clear();
    await this.opts.fallback.close();
    if (this.inflight) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
      });
      await Promise.race([this.inflight, timeout]);
      clearTimeout(timer);
    }
  }
}

async function readCaFile(path: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`tls.acme.caFile ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  try {
    parseLeaf(pem);
  } catch (err) {
    throw new Error(`tls.acme.caFile ${path}: ${(err as Error).message}`, { cause: err });
  }
  return pem;
}

/** Checks what the ACME server returned before it is stored and served. */
function checkIssued(chainPem: string, keyPem: string, publicHost: string): ApiCert {
  const leaf = parseLeaf(chainPem);
  if (!leaf.checkPrivateKey(parsePrivateKey(keyPem))) throw new Error('the ACME certificate does not match the key of the order');
  if (!namesHost(leaf, publicHost)) throw new Error(`the ACME certificate does not name ${publicHost}`);
  return { pair: { certPem: chainPem, keyPem }, ...summarize(leaf) };
}

/** The stored ACME certificate, if it is still usable for this host; otherwise undefined (a new order follows). */
async function loadStored(dir: string, publicHost: string, logger: Logger): Promise<ApiCert | undefined> {
  const [certPem, keyPem] = await Promise.all([readIfExists(join(dir, 'api.crt')), readIfExists(join(dir, 'api.key'))]);
  if (certPem === undefined || keyPem === undefined) return undefined;
  try {
    const cert = checkIssued(certPem, keyPem, publicHost);
    if (cert.notAfter.getTime() <= Date.now()) throw new Error('expired');
    logger.info({ serial: cert.serial, notAfter: cert.notAfter }, 'ACME certificate loaded');
    return cert;
  } catch (err) {
    logger.warn({ reason: (err as Error).message }, 'stored ACME certificate not usable; ordering a new one');
    return undefined;
  }
}
