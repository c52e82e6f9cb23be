import { CallError } from './api.js';

/*
 * What the portal says when the server refuses: the server's message, and for the refusals a
 * user can do something about, what to do next, in words.
 */

const ADVICE: Record<string, string> = {
  QUOTA_EXCEEDED: 'Stop a session you no longer need (in "My sessions" below), or ask an administrator for a larger quota.',
  QUOTA_UNAVAILABLE: 'The quota could not be checked just now. Try again in a minute.',
  CAPACITY_REACHED: 'The server is full right now. Try again in a few minutes, or stop a session you no longer need.',
  RATE_LIMITED: 'Too many attempts. Wait a minute and try again.',
  AUTH_REQUIRED: 'Your sign-in has ended. Reload the page and sign in again.',
};

function sentence(s: string): string {
  const t = s.trim();
  if (!t) return t;
  const first = t[0]!.toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

export function errorText(err: unknown): string {
  if (!(err instanceof CallError)) return 'The server could not be reached. Check your connection and try again.';
  const advice = ADVICE[err.info.code];
  return advice ? `${sentence(err.info.message)} ${advice}` : sentence(err.info.message);
}
