import type { Entry } from 'ldapts';
import type { AuthAnswer, AuthProvider, Logger, Role } from '../../core/plugin/contract.js';
import { connect, TooManyEntries, WrongCredentials, type DirectoryConnection, type DirectorySettings } from './directory.js';
import { escapeDnValue, escapeFilterValue, fillTemplate, normalizeDn } from './escape.js';
import type { LdapOptions } from './options.js';

/** The identity source of accounts this plugin provisions. */
export const SOURCE = 'ldap';

/** HackStream's rule for external usernames (ExternalIdentity): 3–64 of a-z 0-9 . _ -, starting with a letter or digit. */
export const USERNAME = /^[a-z0-9][a-z0-9._-]{2,63}$/;

/** What the provider needs beyond its options: secrets read at start-up, and where to log. */
export interface ProviderDeps {
  readonly options: LdapOptions;
  readonly ca: Buffer | undefined;
  /** The service account's password (from bindPassword or bindPasswordFile). */
  readonly bindPassword: string | undefined;
  readonly logger: Logger;
}

/** The directory's verdict on one attempt, before mapping to HackStream terms. */
type Lookup = { readonly kind: 'unknown' } | { readonly kind: 'denied'; readonly reason: string } | { readonly kind: 'found'; readonly entry: Entry; readonly groups: readonly string[] };

export interface LdapProvider extends AuthProvider {
  /** Drops every connection still open and refuses further attempts (shutdown). */
  closeAll(): void;
}

export function createLdapProvider(deps: ProviderDeps): LdapProvider {
  const { options, logger } = deps;
  const settings: DirectorySettings = {
    url: options.url,
    startTls: options.startTls,
    ca: deps.ca,
    connectTimeoutMs: options.connectTimeoutMs,
    timeoutMs: options.timeoutMs,
  };
  const live = new Set<() => void>();
  let closed = false;
  const deny = (reason: string): AuthAnswer => ({ result: 'deny', reason });
  const unknown = (): AuthAnswer => (options.unknownUser === 'skip' ? { result: 'skip' } : deny('unknown-user'));

  return {
    async authenticate({ username, password }) {
      if (password === '') return deny('empty-password');
      if (closed) return deny('shutting-down');
      if (username.trim() === '' || username.length > 256) return unknown();
      let lookup: Lookup;
      try {
        lookup = await attempt(settings, live, (conn) => find(conn, deps, username, password));
      } catch (err) {
        logger.warn({ error: describe(err), url: options.url }, 'ldap directory failed; denying');
        return deny('directory-unavailable');
      }
      if (lookup.kind === 'unknown') {
        logger.debug({ username }, 'ldap user not found');
        return unknown();
      }
      if (lookup.kind === 'denied') {
        logger.info({ username, reason: lookup.reason }, 'ldap login refused');
        return deny(lookup.reason);
      }
      return toIdentity(lookup.entry, lookup.groups, options, logger);
    },
    closeAll() {
      closed = true;
      for (const close of live) close();
      live.clear();
    },
  };
}

/** Runs `work` on a fresh connection within connectTimeoutMs + timeoutMs; the connection is always closed. */
async function attempt<T>(settings: DirectorySettings, live: Set<() => void>, work: (conn: DirectoryConnection) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const abandon = () => abort.abort();
  live.add(abandon);
  let timer: NodeJS.Timeout | undefined;
  const budget = settings.connectTimeoutMs + settings.timeoutMs;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abandon();
      reject(new Error(`no answer within ${budget} ms`));
    }, budget);
  });
  const run = async () => {
    const conn = await connect(settings, abort.signal);
    if (abort.signal.aborted) throw new Error('attempt abandoned');
    return work(conn);
  };
  try {
    return await Promise.race([run(), deadline]);
  } finally {
    clearTimeout(timer);
    live.delete(abandon);
    abandon();
  }
}

async function find(conn: DirectoryConnection, deps: ProviderDeps, username: string, password: string): Promise<Lookup> {
  const { options } = deps;
  const attributes = [options.usernameAttribute, options.subjectAttribute, ...(options.groupSearch ? [] : [options.memberOfAttribute])];
  const binary = options.subjectAttribute.toLowerCase() === 'objectguid' ? [options.subjectAttribute] : [];
  const search = options.search;
  const userSearch = (base: string, scope: 'sub' | 'one' | 'base', filter: string) =>
    conn.search({ base, scope, filter, attributes, binary, sizeLimit: 1 }).catch((err: unknown) => {
      if (err instanceof TooManyEntries) return 'ambiguous' as const;
      throw err;
    });

  let entry: Entry | undefined;
  if (options.userDn !== undefined) {
    // A bind DN template: the directory cannot tell an unknown user from a wrong password.
    const dn = fillTemplate(options.userDn, { username }, escapeDnValue);
    if (!(await bindUser(conn, dn, password))) return { kind: 'denied', reason: 'invalid-credentials' };
    const found = search
      ? await userSearch(search.base, search.scope, fillTemplate(search.filter, { username }, escapeFilterValue))
      : await userSearch(dn, 'base', '(objectClass=*)');
    if (found === 'ambiguous') return { kind: 'denied', reason: 'ambiguous-user' };
    entry = found[0];
    if (!entry) return { kind: 'denied', reason: 'entry-not-readable' };
  } else if (search) {
    if (search.bindDn !== undefined && deps.bindPassword !== undefined) await bindService(conn, search.bindDn, deps.bindPassword);
    const found = await userSearch(search.base, search.scope, fillTemplate(search.filter, { username }, escapeFilterValue));
    if (found === 'ambiguous') return { kind: 'denied', reason: 'ambiguous-user' };
    entry = found[0];
    if (!entry) return { kind: 'unknown' };
  } else {
    throw new Error('neither userDn nor search is configured');
  }
  // Groups are read before the user's bind in search mode (the service account may read them, the user may not).
  const groups = await groupsOf(conn, entry, username, options);
  if (options.userDn === undefined && !(await bindUser(conn, entry.dn, password))) return { kind: 'denied', reason: 'wrong-password' };
  return { kind: 'found', entry, groups };
}

async function bindUser(conn: DirectoryConnection, dn: string, password: string): Promise<boolean> {
  try {
    await conn.bind(dn, password);
    return true;
  } catch (err) {
    if (err instanceof WrongCredentials) return false;
    throw err;
  }
}

async function bindService(conn: DirectoryConnection, dn: string, password: string): Promise<void> {
  try {
    await conn.bind(dn, password);
  } catch (err) {
    if (err instanceof WrongCredentials) throw new Error('the service account (search.bindDn) was refused: check its password', { cause: err });
    throw err;
  }
}

async function groupsOf(conn: DirectoryConnection, entry: Entry, username: string, options: LdapOptions): Promise<string[]> {
  if (!options.groupSearch) return values(entry, options.memberOfAttribute);
  const gs = options.groupSearch;
  const filter = fillTemplate(gs.filter, { dn: entry.dn, username }, escapeFilterValue);
  const groups = await conn.search({ base: gs.base, scope: gs.scope, filter, attributes: ['1.1'], sizeLimit: 0 });
  return groups.map((g) => g.dn);
}

function toIdentity(entry: Entry, groups: readonly string[], options: LdapOptions, logger: Logger): AuthAnswer {
  const raw = values(entry, options.usernameAttribute)[0];
  const username = raw?.toLowerCase();
  if (username === undefined || !USERNAME.test(username)) {
    logger.warn({ dn: entry.dn, attribute: options.usernameAttribute, value: raw ?? null }, 'ldap username is not a valid HackStream username; denying');
    return { result: 'deny', reason: 'invalid-username' };
  }
  const member = new Set(groups.map(normalizeDn));
  const inAny = (dns: readonly string[]) => dns.some((g) => member.has(normalizeDn(g)));
  if (options.requireGroup && !inAny(options.requireGroup)) {
    logger.info({ username, dn: entry.dn }, 'ldap user is in no required group');
    return { result: 'deny', reason: 'not-in-required-group' };
  }
  const role: Role = inAny(options.groups.admin) ? 'admin' : 'user';
  const subject = subjectOf(entry, options.subjectAttribute);
  logger.debug({ username, role, dn: entry.dn }, 'ldap login accepted');
  return { result: 'ok', identity: { username, role, source: SOURCE, subject } };
}

/** An attribute's values as strings, its name matched case-insensitively. */
function values(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const v = key === undefined || key === 'dn' ? undefined : entry[key];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : x));
}

function subjectOf(entry: Entry, attribute: string): string {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const v = key === undefined ? undefined : entry[key];
  const first = Array.isArray(v) ? v[0] : v;
  if (Buffer.isBuffer(first) && first.length === 16) return formatGuid(first);
  if (typeof first === 'string' && first !== '') return first;
  return entry.dn;
}

/** AD's objectGUID bytes as the usual GUID string (the first three groups little-endian). */
export function formatGuid(b: Buffer): string {
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = b.subarray(from, to);
    return Buffer.from(reverse ? [...part].reverse() : part).toString('hex');
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

/** An error for the log: its kind and message only (ldapts messages carry no credentials). */
function describe(err: unknown): { name: string; message: string; cause?: string } {
  if (!(err instanceof Error)) return { name: 'unknown', message: String(err) };
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return { name: err.name, message: err.message, ...(cause ? { cause } : {}) };
}
