import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Format byte in front of every ciphertext, so the layout can change later. */
const VERSION = 1;

/**
 * Encrypts TOTP secrets at rest (AES-256-GCM). The key lives in a file outside the
 * database, so a dump or a backup of the database alone does not hold usable secrets. The
 * user id is the additional authenticated data: a ciphertext moved to another user's row
 * does not decrypt.
 */
export interface SecretBox {
  /** A short fingerprint of the key (not the key), stored next to each ciphertext. */
  readonly keyId: string;
  seal(plaintext: string, userId: string): Buffer;
  /** Throws when the ciphertext was not sealed with this key for this user. */
  open(sealed: Buffer, userId: string): string;
}

export function secretBox(key: Buffer): SecretBox {
  if (key.length !== KEY_BYTES) throw new Error(`the key must be ${KEY_BYTES} bytes`);
  const keyId = createHash('sha256').update('hackstream mfa-totp key id\0').update(key).digest('hex').slice(0, 16);
  return {
    keyId,
    seal(plaintext, userId) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(userId, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
    },
    open(sealed, userId) {
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) throw new Error('unknown secret format');
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(userId, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    },
  };
}

/**
 * Reads the key file (64 hex digits), creating it with a fresh random key (mode 0600) when
 * it does not exist. Creation is atomic (written to a temporary file, then hard-linked to
 * the name), so two processes starting at once end up with the same key. A key file that
 * others can read or that is malformed is refused: the plugin does not start.
 */
export async function loadOrCreateKey(path: string): Promise<Buffer> {
  const existing = await readKey(path);
  if (existing) return existing;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${randomBytes(KEY_BYTES).toString('hex')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
  } catch (err) {
    if (!isCode(err, 'EEXIST')) throw err;
  } finally {
    await unlink(tmp);
  }
  const key = await readKey(path);
  if (!key) throw new Error(`key file ${path} vanished while it was created`);
  return key;
}

async function readKey(path: string): Promise<Buffer | null> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return null;
    throw err;
  }
  if ((mode & 0o077) !== 0) throw new Error(`key file ${path} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  const text = (await readFile(path, 'utf8')).trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new Error(`key file ${path} does not hold a key (64 hex digits)`);
  return Buffer.from(text, 'hex');
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code;
}
