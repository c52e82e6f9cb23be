/*
 * Reading a session's activity from `xpra info` (xpra 3.1): `clients=N` counts the attached
 * clients (the info request itself excluded); each client's `idle_time` is the whole seconds
 * since its last keyboard or pointer event (xpra/server/source/idle_mixin.py). With one client
 * the key is `client.idle_time`, with several `client.<i>.idle_time`. Before those, the command
 * prints `tokens_spent=N`: the lines of /tmp/hs/spent, one per connect token the session's
 * authentication module (images/firefox-xpra/hackstream_auth.py) has accepted.
 */
import type { SessionActivity } from '../core/sessions/runtime.js';

/** The info lines activity needs (a filter for the exec: the full dump runs to thousands of lines). */
export const ACTIVITY_LINE = /^(?:clients=\d+|client\.(?:\d+\.)?idle_time=\d+|tokens_spent=\d+)$/;

/** The activity in `xpra info` output; throws when it does not say how many clients are attached. */
export function parseXpraActivity(output: string): SessionActivity {
  let clients: number | undefined;
  let idleSeconds: number | null = null;
  let tokensSpent = 0;
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    if (!ACTIVITY_LINE.test(line)) continue;
    const value = Number(line.slice(line.indexOf('=') + 1));
    if (line.startsWith('clients=')) clients = value;
    else if (line.startsWith('tokens_spent=')) tokensSpent = value;
    else idleSeconds = idleSeconds === null ? value : Math.min(idleSeconds, value);
  }
  if (clients === undefined) throw new Error('xpra info did not report its clients');
  return { clients, idleSeconds: clients > 0 ? idleSeconds : null, tokensSpent };
}

/**
 * The count of spent tokens, then the session user's `xpra info` on the session's own socket,
 * filtered to the lines activity reads (parseXpraActivity); the exit code is xpra's. A fixed
 * command: the activity method runs nothing else.
 */
export const XPRA_ACTIVITY_CMD = [
  '/bin/bash',
  '-c',
  'echo "tokens_spent=$(cat /tmp/hs/spent 2>/dev/null | wc -l)"; set -o pipefail; PATH=/usr/bin:/bin /usr/bin/xpra info --socket-dirs=/tmp/hs/xpra :100 2>/dev/null | { grep -E "^(clients=|client\\.([0-9]+\\.)?idle_time=)" || true; }',
];
