/** Node clamps longer timeouts to 1 ms, so far-off deadlines are reached in hops of at most this. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * When to renew a certificate: `renewBeforeMs` before it expires, or once two thirds of its
 * lifetime have passed if that comes first (short-lived certs, e.g. a test CA's).
 */
export function renewalTime(notBefore: Date, notAfter: Date, renewBeforeMs: number): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return new Date(notAfter.getTime() - Math.min(renewBeforeMs, lifetime / 3));
}

/** Exponential backoff with ±20 % jitter: attempt 1 waits about `minMs`, each next one twice as long, up to `maxMs`. */
export function retryDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Calls `fn` at `at` (now if it has passed) without keeping the process alive; returns a cancel function. */
export function runAt(at: Date, fn: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const wait = at.getTime() - Date.now();
    if (wait <= 0) {
      timer = undefined;
      fn();
      return;
    }
    timer = setTimeout(arm, Math.min(wait, MAX_TIMEOUT_MS));
    timer.unref();
  };
  timer = setTimeout(arm, 0);
  timer.unref();
  return () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
}
