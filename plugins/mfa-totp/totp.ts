import { generateSecret, generateURI, verify as verifyCode } from 'otplib';
import QRCode from 'qrcode';
import type { AccountsService, AuditService, Logger, SecondFactor, SecondFactorSubject } from '../../core/plugin/contract.js';
import type { TotpOptions } from './options.js';
import { hashRecoveryCode, newRecoveryCodes, RECOVERY_CODE_PATTERN } from './recovery-codes.js';
import type { SecretBox } from './secret-box.js';
import type { FactorStore } from './store.js';

/** RFC 6238 defaults every authenticator app supports: SHA-1, 6 digits, 30 s. */
export const PERIOD_S = 30;
export const CODE_PATTERN = /^\d{6}$/;
/** A pending enrolment not confirmed within this time has to be started again. */
export const PENDING_TTL_MS = 15 * 60_000;

export interface Enrolment {
  /** Base32, for typing into an app by hand. */
  readonly secret: string;
  readonly otpauthUri: string;
  /** The URI as a QR code: a PNG data URL and an SVG document. */
  readonly qrPng: string;
  readonly qrSvg: string;
  readonly expiresAt: string;
}

export interface TotpStatus {
  readonly enrolled: boolean;
  readonly pending: boolean;
  readonly confirmedAt: string | null;
  readonly recoveryCodesLeft: number;
}

/** Why an operation was refused; the routes turn it into an HTTP answer. */
export type Refusal = 'already-enrolled' | 'no-pending-enrolment' | 'enrolment-expired' | 'wrong-code' | 'not-enrolled' | 'unknown-user';

export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly refusal: Refusal };

export interface TotpDeps {
  readonly store: FactorStore;
  readonly box: SecretBox;
  readonly options: TotpOptions;
  readonly accounts: Pick<AccountsService, 'findById'>;
  readonly audit: AuditService;
  readonly logger: Logger;
  /** Milliseconds since the epoch; tests move it. */
  readonly now?: () => number;
}

/** Who acts on an enrolment, for audit. */
export interface Actor {
  readonly userId: string;
  readonly username: string;
  readonly ip: string;
}

/** TOTP enrolment, the second factor and the admin reset, over the plugin's store. */
export class TotpService {
  private readonly now: () => number;

  constructor(private readonly deps: TotpDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** A new pending secret (replacing a pending one); refused while a confirmed one exists. */
  async enrol(actor: Actor): Promise<Outcome<Enrolment>> {
    const { store, box, options } = this.deps;
    const secret = generateSecret();
    if (!(await store.putPending(actor.userId, box.seal(secret, actor.userId), box.keyId))) return refuse('already-enrolled');
    const otpauthUri = generateURI({ issuer: options.issuer, label: actor.username, secret });
    const [qrPng, qrSvg] = await Promise.all([QRCode.toDataURL(otpauthUri, { errorCorrectionLevel: 'M' }), QRCode.toString(otpauthUri, { type: 'svg', errorCorrectionLevel: 'M' })]);
    await this.audit('enrol', actor, actor.userId, 'success');
    this.deps.logger.info({ userId: actor.userId }, 'totp enrolment started');
    return { ok: true, value: { secret, otpauthUri, qrPng, qrSvg, expiresAt: new Date(this.now() + PENDING_TTL_MS).toISOString() } };
  }

  /** Activates the pending secret when `code` is right; returns the recovery codes (only now). */
  async confirm(actor: Actor, code: string): Promise<Outcome<{ recoveryCodes: string[] }>> {
    const { store, box } = this.deps;
    const row = await store.find(actor.userId);
    if (!row) return refuse('no-pending-enrolment');
    if (row.confirmedAt) return refuse('already-enrolled');
    if (this.now() - row.createdAt.getTime() > PENDING_TTL_MS) return refuse('enrolment-expired');
    const step = await this.matchStep(box.open(row.sealed, actor.userId), code);
    if (step === null) {
      await this.audit('confirm', actor, actor.userId, 'failure', { reason: 'wrong-code' });
      return refuse('wrong-code');
    }
    const recoveryCodes = newRecoveryCodes();
    const hashes = recoveryCodes.map((c) => hashRecoveryCode(actor.userId, c));
    if (!(await store.confirm(actor.userId, row.sealed, step, hashes))) return refuse('no-pending-enrolment');
    await this.audit('confirm', actor, actor.userId, 'success', { recoveryCodes: hashes.length });
    this.deps.logger.info({ userId: actor.userId }, 'totp enrolment confirmed');
    return { ok: true, value: { recoveryCodes } };
  }

  async status(userId: string): Promise<TotpStatus> {
    const row = await this.deps.store.find(userId);
    const enrolled = row?.confirmedAt != null;
    return {
      enrolled,
      pending: row !== null && !enrolled && this.now() - row.createdAt.getTime() <= PENDING_TTL_MS,
      confirmedAt: row?.confirmedAt?.toISOString() ?? null,
      recoveryCodesLeft: enrolled ? await this.deps.store.recoveryCodesLeft(userId) : 0,
    };
  }

  /** An admin removes a user's factor (pending or confirmed); audited. */
  async reset(admin: Actor, userId: string): Promise<Outcome<null>> {
    if (!(await this.deps.accounts.findById(userId))) return refuse('unknown-user');
    const removed = await this.deps.store.remove(userId);
    if (!removed) return refuse('not-enrolled');
    await this.audit('reset', admin, userId, 'success');
    this.deps.logger.info({ userId, by: admin.userId }, 'totp factor reset');
    return { ok: true, value: null };
  }

  /** A reset asked for by someone who is not an admin: refused, audited as a failure. */
  async resetForbidden(actor: Actor, userId: string): Promise<void> {
    await this.audit('reset', actor, userId, 'failure', { reason: 'not-admin' });
  }

  /** The `totp` second factor for the login. */
  secondFactor(): SecondFactor {
    return {
      id: 'totp',
      required: (subject) => this.required(subject),
      verify: (subject, response) => this.verify(subject, response),
      reset: async (userId, by) => (await this.reset(by, userId)).ok,
    };
  }

  private async required(subject: SecondFactorSubject): Promise<boolean> {
    const { providers } = this.deps.options;
    if (providers !== 'all' && !providers.includes(subject.provider)) return false;
    const row = await this.deps.store.find(subject.userId);
    return row?.confirmedAt != null;
  }

  private async verify(subject: SecondFactorSubject, response: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    const answer = response.trim();
    // Apps show codes as "123 456"; users type them so.
    const digits = answer.replace(/\s/g, '');
    const row = await this.deps.store.find(subject.userId);
    if (!row?.confirmedAt) return { ok: false, reason: 'not-enrolled' };
    if (CODE_PATTERN.test(digits)) {
      const step = await this.matchStep(this.deps.box.open(row.sealed, subject.userId), digits);
      if (step === null) return { ok: false, reason: 'wrong-code' };
      // Two logins racing with one code: only one UPDATE finds last_step below the step.
      if (!(await this.deps.store.useStep(subject.userId, step))) return { ok: false, reason: 'code-already-used' };
      return { ok: true };
    }
    if (RECOVERY_CODE_PATTERN.test(answer)) {
      if (!(await this.deps.store.useRecoveryCode(subject.userId, hashRecoveryCode(subject.userId, answer)))) return { ok: false, reason: 'wrong-recovery-code' };
      const left = await this.deps.store.recoveryCodesLeft(subject.userId);
      await this.audit('recovery_code_used', { userId: subject.userId, username: subject.username, ip: subject.ip }, subject.userId, 'success', { left });
      return { ok: true };
    }
    return { ok: false, reason: 'malformed-response' };
  }

  /**
   * The time step (±1 around now) whose code is `code`, or null. Whether it was used already
   * is the store's atomic check, not this one's.
   */
  private async matchStep(secret: string, code: string): Promise<number | null> {
    if (!CODE_PATTERN.test(code)) return null;
    const result = await verifyCode({
      secret,
      token: code,
      epoch: Math.floor(this.now() / 1000),
      epochTolerance: PERIOD_S,
    });
    return result.valid && 'timeStep' in result ? result.timeStep : null;
  }

  private audit(event: string, actor: Actor, target: string, result: 'success' | 'failure', details?: Record<string, string | number | boolean | null>): Promise<void> {
    return this.deps.audit.record({ action: `mfa_totp.${event}`, actor: actor.userId, target, ip: actor.ip, result, ...(details ? { details } : {}) });
  }
}

function refuse(refusal: Refusal): { ok: false; refusal: Refusal } {
  return { ok: false, refusal };
}
