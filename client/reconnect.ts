import { CliError, EXIT } from './errors.js';

/*
 * Coming back after the network went away (issue 13). Three answers are told apart:
 * the server cannot be reached (or is between two processes): wait and try again, up to the
 * give-up; the server says the session is gone: stop with SESSION_GONE; the login is refused:
 * stop with AUTH and say how to log in again. Anything else stops as it would have before.
 */

/** 5 min of outage (the figure users should be able to count on) and a margin for the last tries. */
export const DEFAULT_GIVE_UP_MS = 6 * 60_000;
const FIRST_DELAY_MS = 1_000;
const MAX_DELAY_MS = 15_000;

/** The give-up in ms: HACKSTREAM_RECONNECT_GIVE_UP (seconds, > 0) or the default. */
export function giveUpMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.HACKSTREAM_RECONNECT_GIVE_UP;
  if (raw === undefined || raw === '') return DEFAULT_GIVE_UP_MS;
  const s = Number(raw);
  if (!Number.isFinite(s) || s <= 0) throw new CliError(EXIT.USAGE, `HACKSTREAM_RECONNECT_GIVE_UP must be a number of seconds above 0 (got ${raw})`);
  return Math.round(s * 1000);
}

/**
 * The wait before try `attempt` (0 first): doubling from 1 s, capped at 15 s, each a random
 * point in its upper half ("equal jitter"), so clients that lost the same Wi-Fi do not come
 * back in step and the server sees them spread out.
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (base / 2) * random());
}

/** True for failures that say nothing about the session: no route, no answer, a server not ready yet. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof CliError)) return false;
  if (err.exitCode === EXIT.UNREACHABLE || err.exitCode === EXIT.RUNTIME_UNAVAILABLE) return true;
  // A proxy or a restarting control plane answering for the API (502/503/504 without our error body).
  return err.apiCode !== undefined && /^HTTP_50[234]$/.test(err.apiCode);
}

/** How long, said for people: "45 s", "3 min 20 s". */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

export interface RetryOptions {
  /** Session id, for the messages. */
  id: string;
  /** When the connection was lost (epoch ms): the give-up counts from here. */
  lostAt: number;
  giveUpMs: number;
  log: (m: string) => void;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * Runs `attempt` until it succeeds, retrying transient failures with backoff while the
 * give-up allows, printing a "reconnecting…" line before each wait. An expired login comes
 * out as AUTH with what to do; other failures come out as they are.
 */
export async function untilReachable<T>(attempt: () => Promise<T>, o: RetryOptions): Promise<T> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (err instanceof CliError && err.exitCode === EXIT.AUTH) {
        throw new CliError(
          EXIT.AUTH,
          `your login has expired, so session ${o.id} cannot be re-attached without it: log in again (hackstream login), then hackstream attach ${o.id} — the session itself keeps running until its idle timeout`,
          { cause: err },
        );
      }
      if (!isTransient(err)) throw err;
      const away = Date.now() - o.lostAt;
      const wait = reconnectDelay(n, o.random);
      if (away + wait > o.giveUpMs) {
        throw new CliError(EXIT.UNREACHABLE, `gave up re-attaching to session ${o.id}: the server has been unreachable for ${humanDuration(away)} (${(err as Error).message}). Try hackstream attach ${o.id} once the network is back`, { cause: err });
      }
      o.log(`reconnecting… ${reason(err as CliError)}; next try in ${(wait / 1000).toFixed(1)} s (giving up in ${humanDuration(o.giveUpMs - away)})`);
      await sleep(wait);
    }
  }
}

function reason(err: CliError): string {
  const code = /: (E[A-Z]+|timed out)/.exec(err.message)?.[1];
  if (err.exitCode === EXIT.UNREACHABLE) return `cannot reach the server${code ? ` (${code})` : ''}`;
  return `the server is not ready (${err.apiCode ?? err.message})`;
}
