import { createHash, randomBytes } from 'node:crypto';

/** Crockford's base32 alphabet: no I, L, O or U to misread. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CHARS = 16;
export const RECOVERY_CODE_COUNT = 10;
/** `XXXX-XXXX-XXXX-XXXX`; case, spaces and hyphens are ignored when one is entered. */
export const RECOVERY_CODE_PATTERN = /^[0-9A-Z]{4}(?:[- ]?[0-9A-Z]{4}){3}$/i;

/** Fresh recovery codes, 80 random bits each. */
export function newRecoveryCodes(count = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: count }, () => {
    const bytes = randomBytes(CHARS);
    let code = '';
    for (let i = 0; i < CHARS; i++) code += ALPHABET[(bytes[i] ?? 0) & 31];
    return code.match(/.{4}/g)?.join('-') ?? code;
  });
}

/**
 * The stored form: SHA-256 over the user id and the normalised code. A fast hash suffices
 * for 80 random bits (no dictionary to try; 2^80 guesses per user is out of reach), and it
 * lets a login find and spend the code with one indexed, atomic UPDATE. The user id keeps
 * one user's hashes from matching another's.
 */
export function hashRecoveryCode(userId: string, code: string): Buffer {
  return createHash('sha256').update(`hackstream mfa-totp recovery\0${userId}\0${normalise(code)}`).digest();
}

function normalise(code: string): string {
  return code.replace(/[- ]/g, '').toUpperCase().replaceAll('I', '1').replaceAll('L', '1').replaceAll('O', '0');
}
