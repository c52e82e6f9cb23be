/*
 * A session container's create options: the hardening every session runs under (read-only
 * root, no capabilities, no new privileges, uid 1000, memory/CPU/pids limits, no published
 * ports, bounded logs) and the session's settings passed in its environment (all but the TLS
 * key, which the runtime writes to the container's stdin).
 */
import type Docker from 'dockerode';
import { LABELS, type SessionLimits, type SessionSpec } from '../core/sessions/runtime.js';
import { withProfile } from './profile-mount.js';

export const MB = 1024 * 1024;

export interface ContainerContext {
  readonly image: string;
  readonly networkName: string;
  readonly xpraPort: number;
  readonly instanceId: string;
  /** The owner's mounted persistent profile volume (agent/profiles.ts), for a persist session. */
  readonly profileSource?: string;
}

export function sessionContainerConfig(spec: SessionSpec, ctx: ContainerContext): Docker.ContainerCreateOptions {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,120}$/.test(spec.sessionId)) throw new TypeError('sessionId is not a valid container name part');
  checkLimits(spec.limits);
  const memory = spec.limits.memoryMb * MB;
  const labels: Record<string, string> = {
    [LABELS.managed]: '1',
    [LABELS.instance]: ctx.instanceId,
    [LABELS.session]: spec.sessionId,
  };
  if (spec.userId) labels[LABELS.user] = spec.userId;
  if (spec.pooled) labels[LABELS.pool] = '1';
  return withProfile({
    name: `hs-${spec.sessionId}`,
    Image: ctx.image,
    User: '1000:1000',
    Env: sessionEnv(spec, ctx.xpraPort),
    // The TLS key goes in on stdin (DockerRuntime.create writes it, then closes stdin), never
    // in Env: the container's config is readable by inspect and stored on the engine's disk.
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    Labels: labels,
    HostConfig: {
      NetworkMode: ctx.networkName,
      ReadonlyRootfs: true,
      // tmpfs pages count against the memory limit; half of it leaves room for Firefox itself.
      Tmpfs: { '/tmp': `rw,nosuid,nodev,mode=1777,size=${Math.max(16, Math.floor(spec.limits.memoryMb / 2))}m` },
      ShmSize: Math.min(512, Math.max(64, Math.floor(spec.limits.memoryMb / 4))) * MB,
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges:true'],
      Privileged: false,
      Memory: memory,
      MemorySwap: memory,
      OomKillDisable: false,
      NanoCpus: Math.round(spec.limits.cpus * 1e9),
      PidsLimit: spec.limits.pids,
      IpcMode: 'private',
      PortBindings: {},
      PublishAllPorts: false,
      Binds: [],
      Devices: [],
      RestartPolicy: { Name: 'no' },
      AutoRemove: false,
      Init: true,
      // Bounded logs: a chatty session cannot fill the host's disk.
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '2' } },
    },
    NetworkingConfig: { EndpointsConfig: { [ctx.networkName]: {} } },
  }, ctx.profileSource, spec.limits.memoryMb);
}

export function checkLimits(l: SessionLimits): void {
  const ok = Number.isInteger(l.memoryMb) && l.memoryMb >= 16 && l.cpus > 0 && Number.isFinite(l.cpus) && Number.isInteger(l.pids) && l.pids > 0;
  if (!ok) throw new TypeError(`invalid session limits ${JSON.stringify(l)}`);
}

function sessionEnv(spec: SessionSpec, port: number): string[] {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const flag = (on: boolean) => (on ? '1' : '0');
  const p = spec.policy;
  const env = [
    `HS_XPRA_PORT=${port}`,
    `HS_TLS_CERT=${b64(spec.tls.certPem)}`,
    `HS_CLIPBOARD=${flag(p.clipboard)}`,
    `HS_FILE_TRANSFER=${flag(p.fileTransfer)}`,
    `HS_PRINTING=${flag(p.printing)}`,
    `HS_AUDIO=${flag(p.audio)}`,
    `HS_WEBCAM=${flag(p.webcam)}`,
    `HS_DOWNLOADS=${flag(p.downloads)}`,
    `HS_FILE_URLS=${flag(p.fileUrls)}`,
  ];
  if (p.downloadMaxMb !== undefined) env.push(`HS_DOWNLOAD_MAX_MB=${p.downloadMaxMb}`);
  if (spec.url) env.push(`HS_URL=${spec.url}`);
  return env;
}
