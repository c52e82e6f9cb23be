import type { KeyObject, X509Certificate } from 'node:crypto';
import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../../lib/log.js';
import { PairListeners } from './listeners.js';
import type { CertificateSource, KeyPair } from './types.js';
import { namesHost, parseLeaf, parsePrivateKey, summarize, type CertSummary } from './x509.js';

export interface FileSourceOptions {
  certFile: string;
  keyFile: string;
  publicHost: string;
  logger: Logger;
  /** Quiet time after the last change before the files are read (a deploy writes both). */
  debounceMs?: number;
  /** fs.watchFile interval, the backup for file systems where fs.watch misses events. */
  pollMs?: number;
}

interface LoadedPair extends CertSummary {
  pair: KeyPair;
}

const readPem = async (path: string, what: string): Promise<string> => {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`${what} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
};

/** Reads and checks an operator's pair: the cert parses, the key parses and matches it, it has not expired. */
export async function loadFilePair(certFile: string, keyFile: string): Promise<LoadedPair> {
  const [certPem, keyPem] = await Promise.all([readPem(certFile, 'tls.certFile'), readPem(keyFile, 'tls.keyFile')]);
  const fail = (what: string, path: string, err: unknown): Error =>
    new Error(`${what} ${path}: ${(err as Error).message}`, { cause: err });
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = parseLeaf(certPem);
  } catch (err) {
    throw fail('tls.certFile', certFile, err);
  }
  try {
    key = parsePrivateKey(keyPem);
  } catch (err) {
    throw fail('tls.keyFile', keyFile, err);
  }
  const summary = summarize(cert);
  if (!cert.checkPrivateKey(key)) throw new Error(`tls.certFile ${certFile}: key does not match certificate (tls.keyFile ${keyFile})`);
  if (summary.notAfter.getTime() <= Date.now()) {
    throw new Error(`tls.certFile ${certFile}: certificate expired on ${summary.notAfter.toISOString()}`);
  }
  try {
    createSecureContext({ cert: certPem, key: keyPem });
  } catch (err) {
    throw new Error(`tls.certFile ${certFile}: rejected by TLS together with tls.keyFile ${keyFile} (${(err as Error).message})`, { cause: err });
  }
  return { pair: { certPem, keyPem }, ...summary };
}

/**
 * tls.mode "files": the operator's cert and key, reloaded when they change on disk. A change
 * that leaves an invalid pair (typically the cert written, the key not yet) is logged and
 * ignored: the old pair stays until the files form a valid pair again.
 */
export class FileSource implements CertificateSource {
  private readonly listeners: PairListeners;
  private readonly watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private rerun = false;
  private closed = false;

  private constructor(
    private readonly opts: FileSourceOptions,
    private loaded: LoadedPair,
  ) {
    this.listeners = new PairListeners(opts.logger);
  }

  /** Loads the pair (throwing a message that names the bad file) and starts watching both files. */
  static async open(opts: FileSourceOptions): Promise<FileSource> {
    const loaded = await loadFilePair(opts.certFile, opts.keyFile);
    const source = new FileSource(opts, loaded);
    source.describe('certificate files loaded');
    source.watch();
    return source;
  }

  current(): KeyPair {
    return this.loaded.pair;
  }

  onChange(listener: (pair: KeyPair) => void): () => void {
    return this.listeners.add(listener);
  }

  private watch(): void {
    const { certFile, keyFile, logger } = this.opts;
    // The directories, not the files: editors and deploy tools replace files by rename, and
    // Kubernetes swaps a symlinked folder; any event there means "read again and compare".
    for (const dir of new Set([dirname(certFile), dirname(keyFile)])) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.changed());
        watcher.on('error', (err) => logger.warn({ err, dir }, 'certificate directory watch failed; polling only'));
        this.watchers.push(watcher);
      } catch (err) {
        logger.warn({ err, dir }, 'certificate directory watch failed; polling only');
      }
    }
    const interval = this.opts.pollMs ?? 2_000;
    for (const file of new Set([certFile, keyFile])) watchFile(file, { persistent: false, interval }, this.polled);
  }

  private readonly polled = (cur: Stats, prev: Stats): void => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino || cur.size !== prev.size) this.changed();
  };

  private changed(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.reload(), this.opts.debounceMs ?? 250);
    this.debounce.unref();
  }

  /** One reload at a time; a change during a reload triggers one more. */
  private async reload(): Promise<void> {
    if (this.reloading) {
      this.rerun = true;
      return this.reloading;
    }
    this.reloading = this.tryReload();
    try {
      await this.reloading;
    } finally {
      this.reloading = undefined;
    }
    if (this.rerun && !this.closed) {
      this.rerun = false;
      await this.reload();
    }
  }

  private async tryReload(): Promise<void> {
    let next: LoadedPair;
    try {
      next = await loadFilePair(this.opts.certFile, this.opts.keyFile);
    } catch (err) {
      this.opts.logger.warn({ reason: (err as Error).message }, 'certificate files changed but do not form a valid pair; keeping the current one');
      return;
    }
    const { certPem, keyPem } = this.loaded.pair;
    if (this.closed || (next.pair.certPem === certPem && next.pair.keyPem === keyPem)) return;
    this.loaded = next;
    this.describe('certificate files reloaded');
    this.listeners.emit(next.pair);
  }

  private describe(msg: string): void {
    const { certFile, publicHost, logger } = this.opts;
    const { serial, notBefore, notAfter } = this.loaded;
    logger.info({ file: certFile, serial, notAfter }, msg);
    if (notBefore.getTime() > Date.now()) logger.warn({ file: certFile, notBefore }, 'certificate is not valid yet');
    if (!namesHost(parseLeaf(this.loaded.pair.certPem), publicHost)) {
      logger.warn({ file: certFile, publicHost }, 'certificate does not name the public host');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    for (const w of this.watchers) w.close();
    for (const file of new Set([this.opts.certFile, this.opts.keyFile])) unwatchFile(file, this.polled);
    this.listeners.clear();
    await this.reloading;
  }
}
