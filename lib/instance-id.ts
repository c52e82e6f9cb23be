import { createHash } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';

/**
 * The label naming this installation's containers when config sets no sessions.instanceId:
 * stable across restarts, distinct between installations on one engine. The agent and the
 * control plane compute it here, so they always agree.
 */
export function defaultInstanceId(dataDir: string): string {
  return `hs-${createHash('sha256').update(`${osHostname()}\0${resolve(dataDir)}`).digest('hex').slice(0, 12)}`;
}
