import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/** Environment variables that override a config field, with the path they set. */
export const ENV_OVERRIDES: Record<string, string[]> = {
  HACKSTREAM_LISTEN: ['listen'],
  HACKSTREAM_PUBLIC_HOST: ['publicHost'],
  HACKSTREAM_SESSION_DOMAIN: ['sessionDomain'],
  HACKSTREAM_DATA_DIR: ['dataDir'],
  HACKSTREAM_REDIS_URL: ['redisUrl'],
  HACKSTREAM_DATABASE_URL: ['databaseUrl'],
  HACKSTREAM_LOG_LEVEL: ['log', 'level'],
  HACKSTREAM_TLS_MODE: ['tls', 'mode'],
  HACKSTREAM_TLS_CERT_FILE: ['tls', 'certFile'],
  HACKSTREAM_TLS_KEY_FILE: ['tls', 'keyFile'],
  HACKSTREAM_DOCKER_HOST: ['sessions', 'dockerHost'],
  HACKSTREAM_SESSION_IMAGE: ['sessions', 'image'],
  HACKSTREAM_POOL_SIZE: ['sessions', 'pool', 'size'],
};

/** Overrides whose value is a whole number (the environment only holds strings). */
const NUMERIC_ENV = new Set(['HACKSTREAM_POOL_SIZE']);

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid HackStream configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function setPath(target: Record<string, Json>, path: string[], value: Json): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, Json>;
  }
  node[path[path.length - 1] as string] = value;
}

function readConfigFile(file: string): Record<string, Json> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`HACKSTREAM_CONFIG: cannot read "${file}" (${(err as NodeJS.ErrnoException).code ?? String(err)}); fix the path or unset the variable`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`${file}: not valid JSON (${(err as Error).message}); the config file is a JSON object`]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`${file}: must hold a JSON object such as {"publicHost": "hackstream.example.org"}`]);
  }
  return parsed as Record<string, Json>;
}

function describeIssue(issue: z.core.$ZodIssue, envFor: Map<string, string>, file: string | undefined): string {
  const path = issue.path.map(String).join('.') || '(root)';
  const env = envFor.get(path);
  const source = env ? ` (from ${env})` : file ? ` (in ${file})` : '';
  let fix = '';
  if (issue.code === 'unrecognized_keys') fix = `; remove it or check its spelling`;
  // A record key's own refinement says what is wrong; zod only reports "Invalid key in record".
  const message = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  return `${path}${source}: ${message}${fix}`;
}

/**
 * Builds the configuration from the file named by HACKSTREAM_CONFIG (optional), then the
 * environment overrides, validated once. Throws ConfigError listing every problem by path.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const file = env.HACKSTREAM_CONFIG ? resolve(env.HACKSTREAM_CONFIG) : undefined;
  const raw = file ? readConfigFile(file) : {};
  const envFor = new Map<string, string>();
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value !== undefined && value !== '') {
      setPath(raw, path, NUMERIC_ENV.has(name) && /^\d{1,9}$/.test(value.trim()) ? Number(value.trim()) : value);
      envFor.set(path.join('.'), name);
    }
  }
  return parseConfig(raw, { file, envFor });
}

export function parseConfig(
  raw: unknown,
  ctx: { file?: string | undefined; envFor?: Map<string, string> } = {},
): Readonly<Config> {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => describeIssue(i, ctx.envFor ?? new Map(), ctx.file)));
  }
  return deepFreeze(ctx.file ? { ...result.data, configFile: ctx.file } : result.data);
}

/** The folder relative plugin paths and pluginsDir are resolved against: the config file's, else the working directory. */
export function configDir(config: Pick<Config, 'configFile'>): string {
  return config.configFile ? dirname(config.configFile) : process.cwd();
}

/** `pluginsDir` made absolute; default `<dataDir>/plugins`. */
export function pluginsDirOf(config: Pick<Config, 'configFile' | 'pluginsDir' | 'dataDir'>): string {
  return config.pluginsDir ? resolve(configDir(config), config.pluginsDir) : resolve(config.dataDir, 'plugins');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
