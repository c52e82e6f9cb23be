import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { CliError, EXIT } from './errors.js';

const configSchema = z
  .strictObject({
    api_url: z.string().url(),
    /**
     * Absent: pinned, `fingerprint` must be in the chain the server presents (what every
     * config before this field means). "system": the system trust store vouches for the
     * server (a public or company CA; nothing pinned).
     */
    trust: z.literal('system').optional(),
    /** SHA-256 of the server certificate pinned at `configure` (colon-separated hex, upper case). */
    fingerprint: z
      .string()
      .regex(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
      .optional(),
    /** Dial this address instead of resolving the API host (like curl --resolve); SNI stays the host. */
    address: z.string().min(1).optional(),
  })
  .refine((c) => c.trust === 'system' || c.fingerprint !== undefined, { path: ['fingerprint'], message: 'a pinned server needs its fingerprint' });
export type CliConfig = z.output<typeof configSchema>;

const tokensSchema = z.strictObject({
  accessToken: z.string().min(1),
  refreshToken: z.string().min(1),
  /** Epoch ms after which the access token is treated as expired. */
  accessExpiresAt: z.number(),
  refreshExpiresAt: z.string(),
  username: z.string(),
});
export type StoredTokens = z.output<typeof tokensSchema>;

/** `$XDG_CONFIG_HOME/hackstream`, else `~/.config/hackstream`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && xdg.startsWith('/') ? xdg : join(env.HOME ?? homedir(), '.config');
  return join(base, 'hackstream');
}

export function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(EXIT.FAILURE, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Written to a 0600 temp file and renamed, in a 0700 folder: never readable by others, never half-written. */
export function writePrivate(file: string, value: unknown): void {
  const dir = configDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function loadConfig(): CliConfig | undefined {
  const raw = readJson(join(configDir(), 'config.json'));
  if (raw === undefined) return undefined;
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new CliError(EXIT.NOT_CONFIGURED, `${join(configDir(), 'config.json')} is invalid; run hackstream configure --api-url URL`);
  return parsed.data;
}

/** How requests to the saved server are checked (client/http.ts). */
export function trustOf(c: CliConfig): { pin: string } | { system: true } {
  return c.trust === 'system' || c.fingerprint === undefined ? { system: true } : { pin: c.fingerprint };
}

export function requireConfig(): CliConfig {
  const c = loadConfig();
  if (!c) throw new CliError(EXIT.NOT_CONFIGURED, 'not configured: run hackstream configure --api-url https://your-server');
  return c;
}

export function saveConfig(c: CliConfig): void {
  writePrivate(join(configDir(), 'config.json'), configSchema.parse(c));
}

export function loadTokens(): StoredTokens | undefined {
  const parsed = tokensSchema.safeParse(readJson(join(configDir(), 'tokens.json')));
  return parsed.success ? parsed.data : undefined;
}

export function saveTokens(t: StoredTokens): void {
  writePrivate(join(configDir(), 'tokens.json'), t);
}

export function clearTokens(): void {
  rmSync(join(configDir(), 'tokens.json'), { force: true });
}
