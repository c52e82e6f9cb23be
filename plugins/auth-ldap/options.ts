import { z } from 'zod';

/** An attribute description: a name or an OID (RFC 4512), nothing a filter could be built from. */
const attribute = z.string().regex(/^([A-Za-z][A-Za-z0-9-]*|\d+(\.\d+)+)$/, 'an LDAP attribute name');
const dn = z.string().trim().min(1, 'a DN');
const timeout = z.number().int().min(100).max(60_000);
const scope = z.enum(['sub', 'one', 'base']);

/** Without `userDn` or `search`: a DN template for an OpenLDAP-style tree (so `{}` validates). */
export const DEFAULT_USER_DN = 'uid={username},ou=people,dc=example,dc=org';

const search = z
  .object({
    /** Where users are searched. */
    base: dn,
    /** `{username}` is replaced by the typed username, escaped per RFC 4515. */
    filter: z.string().default('(uid={username})'),
    scope: scope.default('sub'),
    /** The service account that searches; without it the search is anonymous (or, with `userDn`, as the user). */
    bindDn: dn.optional(),
    bindPassword: z.string().min(1).optional(),
    /** A file holding the service password (a trailing newline is dropped); keeps it out of the config. */
    bindPasswordFile: z.string().min(1).optional(),
  })
  .strict();

const groupSearch = z
  .object({
    base: dn,
    /** `{dn}`: the user's DN, `{username}`: the typed username (both escaped per RFC 4515). */
    filter: z.string().default('(&(objectClass=groupOfNames)(member={dn}))'),
    scope: scope.default('sub'),
  })
  .strict();

export const optionsSchema = z
  .object({
    /** `ldaps://host[:port]`, or `ldap://host[:port]` with `startTls: true`. */
    url: z.string().default('ldaps://localhost'),
    startTls: z.boolean().default(false),
    /** Allows plain `ldap://` without StartTLS: passwords cross the network in clear text. Test directories only. */
    allowInsecure: z.boolean().default(false),
    /** PEM file of the CA(s) that signed the directory's certificate; default: Node's bundled CAs. Verification is always on. */
    caFile: z.string().min(1).optional(),
    connectTimeoutMs: timeout.default(3_000),
    /** Per operation, and for everything after connecting. */
    timeoutMs: timeout.default(4_000),
    /** Bind DN template with `{username}` (escaped per RFC 4514), e.g. `uid={username},ou=people,dc=example,dc=org` or `{username}@corp.example.com`. */
    userDn: z.string().optional(),
    search: search.optional(),
    /** The attribute that becomes the HackStream username (lower-cased). */
    usernameAttribute: attribute.default('uid'),
    /** The user's immutable id for audit (`entryUUID`, AD: `objectGUID`); the DN when absent. */
    subjectAttribute: attribute.default('entryUUID'),
    /** Where the user's groups are listed, unless `groupSearch` is set. */
    memberOfAttribute: attribute.default('memberOf'),
    groupSearch: groupSearch.optional(),
    /** Group DNs whose members get the role; everyone else is `user`. */
    groups: z.object({ admin: z.array(dn).default([]) }).strict().default({ admin: [] }),
    /** When set, only members of one of these groups may log in. */
    requireGroup: z.union([dn, z.array(dn).min(1)]).optional(),
    /** A username the directory does not know: `skip` lets a later provider (auth-local) try it. */
    unknownUser: z.enum(['skip', 'deny']).default('skip'),
  })
  .strict()
  .superRefine((o, ctx) => {
    const problem = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const url = parseUrl(o.url);
    if (typeof url === 'string') problem(['url'], url);
    else if (url.protocol === 'ldaps:' && o.startTls) problem(['startTls'], 'StartTLS is for ldap:// URLs; an ldaps:// connection is already TLS');
    else if (url.protocol === 'ldap:' && !o.startTls && !o.allowInsecure) {
      problem(['url'], 'plain ldap:// would send passwords in clear text: use ldaps://, or set startTls: true (or allowInsecure: true for a test directory)');
    }
    if (o.userDn !== undefined && !o.userDn.includes('{username}')) problem(['userDn'], 'must contain {username}');
    if (o.search) {
      const s = o.search;
      if (!isFilterTemplate(s.filter) || !s.filter.includes('{username}')) problem(['search', 'filter'], 'must be a parenthesised LDAP filter containing {username}');
      if (s.bindPassword !== undefined && s.bindPasswordFile !== undefined) problem(['search', 'bindPasswordFile'], 'give bindPassword or bindPasswordFile, not both');
      const hasPassword = s.bindPassword !== undefined || s.bindPasswordFile !== undefined;
      if (s.bindDn !== undefined && !hasPassword) problem(['search', 'bindDn'], 'needs bindPassword or bindPasswordFile');
      if (s.bindDn === undefined && hasPassword) problem(['search', 'bindDn'], 'a service password needs its bindDn');
      if (o.userDn !== undefined && s.bindDn !== undefined) problem(['search', 'bindDn'], 'with userDn the search runs as the user: drop bindDn, or drop userDn to search as the service account');
    }
    if (o.groupSearch && (!isFilterTemplate(o.groupSearch.filter) || !/\{(dn|username)\}/.test(o.groupSearch.filter))) {
      problem(['groupSearch', 'filter'], 'must be a parenthesised LDAP filter containing {dn} or {username}');
    }
  })
  .transform((o) => ({
    ...o,
    userDn: o.userDn ?? (o.search ? undefined : DEFAULT_USER_DN),
    requireGroup: o.requireGroup === undefined ? undefined : typeof o.requireGroup === 'string' ? [o.requireGroup] : o.requireGroup,
  }));

export type LdapOptions = z.output<typeof optionsSchema>;
export type LdapOptionsInput = z.input<typeof optionsSchema>;

/** The URL, or why it is not a usable LDAP URL. */
function parseUrl(raw: string): URL | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL (ldaps://host:port)';
  }
  if (url.protocol !== 'ldap:' && url.protocol !== 'ldaps:') return 'must start with ldaps:// or ldap://';
  if (!url.hostname) return 'needs a host';
  if (url.username || url.password || (url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) {
    return 'only scheme, host and port (credentials go in search.bindDn / bindPassword, the base in search.base)';
  }
  return url;
}

function isFilterTemplate(filter: string): boolean {
  return filter.startsWith('(') && filter.endsWith(')');
}
