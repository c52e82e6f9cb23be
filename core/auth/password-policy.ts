import { dictionary } from '@zxcvbn-ts/language-common';

/** ASVS 6.2.1: at least 8; 6.2.9: at least 64 must be accepted (we take up to 1024, untruncated). */
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

let common: Set<string> | undefined;

/** zxcvbn-ts's list of common passwords (about 49,000, most common first), lowercased. */
function commonPasswords(): Set<string> {
  common ??= new Set(dictionary['passwords-common'].map((p) => p.toLowerCase()));
  return common;
}

/**
 * Why `password` may not be used, or null when it may. Lengths count code points, and the
 * password is never changed (no trimming, no normalisation): what the user typed is hashed.
 * No composition rules (ASVS 6.2.5); common passwords and the username itself are refused.
 */
export function passwordProblem(password: string, username?: string): string | null {
  const length = [...password].length;
  if (length < PASSWORD_MIN) return `a password needs at least ${PASSWORD_MIN} characters`;
  if (length > PASSWORD_MAX) return `a password may have at most ${PASSWORD_MAX} characters`;
  const lower = password.toLowerCase();
  if (commonPasswords().has(lower)) return 'this password is on a list of commonly used passwords; choose another';
  if (username !== undefined && lower === username.toLowerCase()) return 'a password must not be the username';
  return null;
}
