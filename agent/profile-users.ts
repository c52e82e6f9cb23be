/*
 * Which profile volumes live containers hold, from the engine: a container that is not exited
 * or dead and has the volume's mount path as a mount source (any HackStream instance's).
 */
import type Docker from 'dockerode';
import { LABELS } from '../core/sessions/runtime.js';
import type { ProfileUsers } from './profiles.js';

const CALL_TIMEOUT_MS = 30_000;

export function dockerProfileUsers(docker: Docker): ProfileUsers {
  return {
    async inUse(mountPath) {
      const found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.managed}=1`] }, abortSignal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
      return found.some((c) => c.State !== 'exited' && c.State !== 'dead' && (c.Mounts ?? []).some((m) => m.Source === mountPath));
    },
  };
}
