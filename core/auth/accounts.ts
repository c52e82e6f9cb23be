import type { Logger } from '../../lib/log.js';
import type { AccountsService, AccountView, PasswordCheck } from '../plugin/contract.js';
import type { PasswordHasher } from './passwords.js';
import type { Users } from './users.js';

/**
 * The local accounts service behind the auth-local plugin. Every path costs one Argon2id
 * verify: an unknown username or an account without a password verifies a dummy hash, and a
 * disabled account is reported only after its password was checked, so neither status,
 * body nor timing tells which usernames exist. A hash with outdated parameters is replaced
 * after a successful check.
 */
export function createAccountsService(users: Users, hasher: PasswordHasher, logger: Logger): AccountsService {
  return {
    async verifyPassword(username: string, password: string): Promise<PasswordCheck> {
      const user = await users.findByUsername(username);
      if (!user || user.passwordHash === null) {
        await hasher.dummyVerify(password);
        return { ok: false, reason: 'unknown-user' };
      }
      const result = await hasher.verify(user.passwordHash, password);
      if (!result.ok) return { ok: false, reason: 'wrong-password' };
      if (user.disabled) return { ok: false, reason: 'disabled' };
      if (result.rehash) {
        await users.upgradeHash(user, password).then(
          () => logger.info({ userId: user.id }, 'password hash upgraded to the current parameters'),
          (err: unknown) => logger.warn({ userId: user.id, err: err instanceof Error ? err.message : String(err) }, 'password hash upgrade failed'),
        );
      }
      return { ok: true, userId: user.id };
    },
    async findById(userId: string): Promise<AccountView | null> {
      const user = await users.findById(userId);
      if (!user) return null;
      return Object.freeze({ id: user.id, username: user.username, role: user.role, disabled: user.disabled, source: user.source });
    },
  };
}
