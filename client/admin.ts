import type { ApiClient } from './api.js';
import { CliError, EXIT } from './errors.js';

interface UserView {
  id: string;
  username: string;
  role: string;
  disabled: boolean;
  quota: Record<string, unknown>;
}

/** `admin users quota` flags → the API's quota fields. */
export const QUOTA_FLAGS = {
  'max-sessions': 'max_sessions',
  cpus: 'cpus',
  'memory-mb': 'memory_mb',
  'idle-timeout-minutes': 'idle_timeout_minutes',
  'max-duration-minutes': 'max_duration_minutes',
  'storage-mb': 'storage_mb',
} as const;

async function findUser(api: ApiClient, name: string): Promise<UserView> {
  let cursor: string | null = null;
  do {
    const page: { items: UserView[]; next_cursor: string | null } = await api.call('GET', `/v1/users?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    const hit = page.items.find((u) => u.username === name || u.id === name);
    if (hit) return hit;
    cursor = page.next_cursor;
  } while (cursor);
  throw new CliError(EXIT.FAILURE, `no such user: ${name}`);
}

function parseQuota(values: Record<string, string | undefined>): Record<string, number | null> {
  const quota: Record<string, number | null> = {};
  for (const [flag, field] of Object.entries(QUOTA_FLAGS)) {
    const v = values[flag];
    if (v === undefined) continue;
    if (v === 'default') quota[field] = null;
    else if (Number.isFinite(Number(v))) quota[field] = Number(v);
    else throw new CliError(EXIT.USAGE, `--${flag} takes a number or "default", not ${v}`);
  }
  if (Object.keys(quota).length === 0) throw new CliError(EXIT.USAGE, `name at least one of ${Object.keys(QUOTA_FLAGS).map((f) => `--${f}`).join(', ')}`);
  return quota;
}

/** hackstream admin users create|disable|enable|role|quota|list … */
export async function adminUsers(
  api: ApiClient,
  args: string[],
  values: Record<string, string | undefined>,
  readPassword: () => Promise<string>,
  out: (s: string) => void,
): Promise<void> {
  const [verb, name, extra] = args;
  const show = (u: UserView) => out(`${u.username}\t${u.id}\t${u.role}\t${u.disabled ? 'disabled' : 'active'}\t${JSON.stringify(u.quota)}`);
  switch (verb) {
    case 'list': {
      const page: { items: UserView[] } = await api.call('GET', '/v1/users?limit=200');
      page.items.forEach(show);
      return;
    }
    case 'create': {
      if (!name) throw new CliError(EXIT.USAGE, 'usage: hackstream admin users create <username> [--role user|admin] (password from the prompt or stdin)');
      const password = await readPassword();
      show(await api.call('POST', '/v1/users', { username: name, password, role: values.role ?? 'user' }));
      return;
    }
    case 'disable':
    case 'enable': {
      if (!name) throw new CliError(EXIT.USAGE, `usage: hackstream admin users ${verb} <username>`);
      const u = await findUser(api, name);
      show(await api.call('PATCH', `/v1/users/${u.id}`, { disabled: verb === 'disable' }));
      return;
    }
    case 'role': {
      if (!name || !extra) throw new CliError(EXIT.USAGE, 'usage: hackstream admin users role <username> user|admin');
      const u = await findUser(api, name);
      show(await api.call('PATCH', `/v1/users/${u.id}`, { role: extra }));
      return;
    }
    case 'quota': {
      if (!name) throw new CliError(EXIT.USAGE, 'usage: hackstream admin users quota <username> [--max-sessions N] [--memory-mb N] [--cpus N] … (a value "default" returns to the role default)');
      const u = await findUser(api, name);
      show(await api.call('PATCH', `/v1/users/${u.id}`, { quota: parseQuota(values) }));
      return;
    }
    default:
      throw new CliError(EXIT.USAGE, 'usage: hackstream admin users create|disable|enable|role|quota|list …');
  }
}
