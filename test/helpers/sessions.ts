import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import type { ConfigInput } from '../../core/config/schema.js';
import { removeSessionNetworkRules } from '../../agent/network.js';
import { LABELS } from '../../core/sessions/runtime.js';
import type { ConnectDescriptor, SessionView } from '../../core/sessions/view.js';
import { after, before } from 'node:test';
import { errorCode, startApi, type ApiOptions, type ApiResponse, type TestApi } from './api.js';
import type { XpraTarget } from './xpra.js';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

export type SessionsInput = NonNullable<ConfigInput['sessions']>;

/**
 * Session settings for one test file: its own instance id (so reconciliation never touches
 * another file's containers), its own network and bridge, no pool unless asked.
 */
export function testSessions(overrides: Partial<SessionsInput> = {}): SessionsInput & { instanceId: string } {
  const tag = randomBytes(3).toString('hex');
  return {
    instanceId: `hs-test-${tag}`,
    pool: { size: 0 },
    network: { name: `hs-test-${tag}`, bridge: `hst-${tag}` },
    ...overrides,
  };
}

export type CreatedSession = SessionView & { connect: ConnectDescriptor };

export async function launch(api: TestApi, token: string, body: Record<string, unknown> = { app: 'firefox' }): Promise<CreatedSession> {
  const r = await api.request('POST', '/v1/sessions', { token, body });
  if (r.status !== 201) throw new Error(`launch: ${r.status} ${r.text}`);
  return r.json as CreatedSession;
}

/** Dial the gateway on loopback with the descriptor's SNI, CA and token. */
export function target(api: TestApi, c: ConnectDescriptor, token = c.token): XpraTarget {
  return { host: '127.0.0.1', port: api.port, sni: c.sni, caPem: c.ca_cert, token };
}

/** This instance's containers, running or not. */
export async function containersOf(instanceId: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${instanceId}`] } });
}

export async function removeContainersOf(instanceId: string): Promise<void> {
  for (const c of await containersOf(instanceId)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
}

export async function removeNetwork(name: string): Promise<void> {
  await docker
    .getNetwork(name)
    .remove()
    .catch(() => {});
}

/** Polls GET /v1/sessions/:id until `pred` holds or `ms` pass; returns the last view. */
export async function waitForSession(api: TestApi, token: string, id: string, pred: (s: SessionView) => boolean, ms = 30_000): Promise<SessionView> {
  const end = Date.now() + ms;
  let last: SessionView | undefined;
  while (Date.now() < end) {
    const r = await api.request('GET', `/v1/sessions/${id}`, { token });
    if (r.status === 200) {
      last = r.json as SessionView;
      if (pred(last)) return last;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`session ${id}: condition not met within ${ms} ms (last state ${last?.state ?? 'unknown'})`);
}

export function expectError(r: ApiResponse, status: number, code: string): string | undefined {
  if (r.status !== status || errorCode(r) !== code) return `expected ${status} ${code}, got ${r.status} ${r.text.slice(0, 200)}`;
  return undefined;
}

/** Removes a test file's containers and its network. */
export async function cleanupSessions(s: { instanceId: string; network?: { name?: string; bridge?: string } }): Promise<void> {
  await removeContainersOf(s.instanceId);
  if (s.network?.name) await removeNetwork(s.network.name);
  if (s.network?.name && s.network.bridge) await removeSessionNetworkRules({ name: s.network.name, bridge: s.network.bridge, allow: [] }).catch(() => {});
}

/**
 * A HackStream with these session settings for one describe block: started before its
 * tests; closed, with its containers and network removed, after them.
 */
export function useSessionsApi(sessions: SessionsInput & { instanceId: string }, opts: Omit<ApiOptions, 'config'> = {}): { readonly api: TestApi } {
  let api: TestApi | undefined;
  before(async () => {
    api = await startApi({ ...opts, config: { sessions } });
  });
  after(async () => {
    await api?.close();
    await cleanupSessions(sessions);
  });
  return {
    get api() {
      if (!api) throw new Error('the app is not started yet');
      return api;
    },
  };
}
