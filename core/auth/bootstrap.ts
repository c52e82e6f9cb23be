import { randomBytes } from 'node:crypto';
import { AppError } from '../errors.js';
import { UserEntity } from '../store/entities.js';
import type { Audit } from './audit.js';
import type { PasswordHasher } from './passwords.js';
import { checkPassword, usernameSchema, type Users } from './users.js';

/** Held while checking for and creating the first admin, so instances starting together create one. */
const BOOTSTRAP_LOCK_KEY = 0x48534231; // "HSB1"

export interface BootstrapInput {
  /** HACKSTREAM_ADMIN_USER; default "admin". */
  username?: string | undefined;
  /** HACKSTREAM_ADMIN_PASSWORD; without it a password is generated and announced once. */
  password?: string | undefined;
}

export type BootstrapResult =
  | { created: false }
  | { created: true; username: string; userId: string; generatedPassword: string | null };

export class BootstrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BootstrapError';
  }
}

/**
 * On an empty database, creates the first admin. Only an empty users table counts: once any
 * account exists nothing happens, whatever the environment says (no default credentials).
 */
export async function ensureFirstAdmin(deps: { users: Users; hasher: PasswordHasher; audit: Audit }, input: BootstrapInput): Promise<BootstrapResult> {
  if ((await deps.users.count()) > 0) return { created: false };
  const username = input.username ?? 'admin';
  if (!usernameSchema.safeParse(username).success) {
    throw new BootstrapError(`HACKSTREAM_ADMIN_USER: "${username.slice(0, 64)}" is not a valid username (letters, digits, ".", "_", "@", "-")`);
  }
  const generated = input.password === undefined ? randomBytes(18).toString('base64url') : null;
  const password = input.password ?? (generated as string);
  try {
    checkPassword(password, username);
  } catch (err) {
    if (err instanceof AppError) throw new BootstrapError(`HACKSTREAM_ADMIN_PASSWORD: ${err.message}`);
    throw err;
  }
  const passwordHash = await deps.hasher.hash(password);
  return deps.audit.transaction(async (tx) => {
    await tx.manager.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK_KEY]);
    if ((await tx.manager.getRepository(UserEntity).count()) > 0) return { created: false } as const;
    const user = await deps.users.insert(tx.manager, { username, passwordHash, role: 'admin' }, { id: 'system', ip: null }, { bootstrap: true }, (e) => tx.audit(e));
    return { created: true, username, userId: user.id, generatedPassword: generated };
  });
}

/** The once-only notice for a generated password (stderr, never the JSON log). */
export function bootstrapNotice(username: string, password: string, publicHost: string): string {
  const bar = '-'.repeat(72);
  return [
    bar,
    'HackStream: no accounts existed, so an administrator was created.',
    '',
    `    username: ${username}`,
    `    password: ${password}`,
    '',
    'This password is shown only now and is not logged. Log in with:',
    `    curl --cacert certs/ca.crt https://${publicHost}/v1/login -H 'content-type: application/json' \\`,
    `         -d '{"username":"${username}","password":"<the password above>"}'`,
    `Set your own with: npm run admin -- reset-password ${username}`,
    bar,
    '',
  ].join('\n');
}
