/*
 * How a persistent profile enters a session container: the image runs Firefox on
 * /tmp/hs/profile, so the user's mounted volume is bind-mounted exactly there. /tmp/hs gets a
 * tmpfs of its own, owned by the session user: otherwise the engine would create /tmp/hs (the
 * bind's parent) as root and the entrypoint, running as uid 1000, could not use it.
 */
import type Docker from 'dockerode';

export const PROFILE_TARGET = '/tmp/hs/profile';

/** `config` with the profile volume at `source` (the agent's own path) mounted, when given. */
export function withProfile(config: Docker.ContainerCreateOptions, source: string | undefined, memoryMb: number): Docker.ContainerCreateOptions {
  if (source === undefined) return config;
  const host = config.HostConfig ?? {};
  const size = Math.max(16, Math.floor(memoryMb / 2));
  return {
    ...config,
    HostConfig: {
      ...host,
      Tmpfs: { ...host.Tmpfs, '/tmp/hs': `rw,nosuid,nodev,mode=0700,uid=1000,gid=1000,size=${size}m` },
      Mounts: [...(host.Mounts ?? []), { Type: 'bind', Source: source, Target: PROFILE_TARGET, ReadOnly: false, BindOptions: { Propagation: 'rprivate' } }],
    },
  };
}
