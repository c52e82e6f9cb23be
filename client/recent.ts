import { join } from 'node:path';
import { z } from 'zod';
import { configDir, readJson, writePrivate } from './config.js';

/** How many URLs the launcher remembers. */
export const RECENT_MAX = 10;

const recentSchema = z.strictObject({ urls: z.array(z.string()) });

export const recentFile = (): string => join(configDir(), 'recent.json');

/**
 * What the user typed as a web address, as the server will store it: trimmed, `https://`
 * added when no scheme was given, normalised by `URL`. Undefined when it is not an http(s) URL.
 */
export function normaliseUrl(input: string): string | undefined {
  const t = input.trim();
  if (t === '') return undefined;
  const withScheme = /^[a-z][a-z0-9+.-]*:/i.test(t) && !/^[^/:]+:\d+(\/|$)/.test(t) ? t : `https://${t}`;
  try {
    const u = new URL(withScheme);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '' || /\s/.test(t)) return undefined;
    return u.href;
  } catch {
    return undefined;
  }
}

/** Newest first, each URL once, at most `max`. */
export function pushRecent(list: readonly string[], url: string, max = RECENT_MAX): string[] {
  return [url, ...list.filter((u) => u !== url)].slice(0, max);
}

/** The remembered URLs; a missing or unreadable file is an empty list (it is only a convenience). */
export function loadRecent(): string[] {
  try {
    const parsed = recentSchema.safeParse(readJson(recentFile()));
    return parsed.success ? parsed.data.urls.slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

/** Remembers `url` (0600, in the 0700 config folder) and returns the new list. */
export function rememberUrl(url: string): string[] {
  const urls = pushRecent(loadRecent(), url);
  writePrivate(recentFile(), { urls });
  return urls;
}
