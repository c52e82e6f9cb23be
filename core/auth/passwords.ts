import { randomBytes } from 'node:crypto';
import { argon2id, hash, needsRehash, verify } from 'argon2';
import { Semaphore } from './semaphore.js';
import type { Argon2Params } from './settings.js';

/** What a check found: whether the password matched, and whether the hash should be redone. */
export interface VerifyResult {
  readonly ok: boolean;
  /** The hash uses other parameters (or another algorithm) than the current ones. */
  readonly rehash: boolean;
}

/**
 * Argon2id behind a small pool: at most `concurrency` hashes run at once (each one holds
 * a libuv thread and memoryCost KiB), so a login flood queues here instead of starving
 * the event loop's other thread-pool work or the memory. Counts every evaluation (the
 * brute-force tests read it).
 */
export class PasswordHasher {
  private evaluated = 0;
  private dummy: Promise<string> | undefined;
  private readonly pool: Semaphore;

  constructor(
    readonly params: Argon2Params,
    opts: { concurrency: number; queueMax: number },
  ) {
    this.pool = new Semaphore(opts.concurrency, opts.queueMax);
  }

  /** Computes the dummy hash now, so the first unknown-user login costs what later ones do. */
  async warmUp(): Promise<void> {
    this.dummy ??= hash(randomBytes(16).toString('hex'), { type: argon2id, ...this.params });
    await this.dummy;
  }

  /** Argon2id evaluations so far (hashes and verifies, the dummy ones included). */
  get evaluations(): number {
    return this.evaluated;
  }

  hash(password: string): Promise<string> {
    return this.evaluate(() => hash(password, { type: argon2id, ...this.params }));
  }

  /** Checks `password` against a PHC string. A malformed stored hash never matches. */
  async verify(phc: string, password: string): Promise<VerifyResult> {
    const ok = await this.evaluate(() => verify(phc, password)).catch((err: unknown) => {
      if (err instanceof Error && /pchstr|hash|format|Invalid/i.test(err.message)) return false;
      throw err;
    });
    return { ok, rehash: ok && this.outdated(phc) };
  }

  /**
   * Spends the time of one verify without a user: unknown usernames cost what a wrong
   * password costs, so timing does not tell whether an account exists (ASVS 6.3.8).
   */
  async dummyVerify(password: string): Promise<void> {
    await this.warmUp();
    const phc = await (this.dummy as Promise<string>);
    await this.evaluate(() => verify(phc, password));
  }

  /** True when `phc` is not Argon2id with exactly the current parameters. */
  outdated(phc: string): boolean {
    if (!phc.startsWith('$argon2id$')) return true;
    try {
      return needsRehash(phc, this.params);
    } catch {
      return true;
    }
  }

  private evaluate<T>(fn: () => Promise<T>): Promise<T> {
    return this.pool.run(() => {
      this.evaluated++;
      return fn();
    });
  }
}
