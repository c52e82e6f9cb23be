import type { FlowAnswer, Role } from '../../core/plugin/contract.js';
import type { IssuerOptions } from './options.js';

/** HackStream's username rule (ExternalIdentity.username). */
const USERNAME = /^[a-z0-9._-]{3,64}$/;

/** A claim by dotted path (`realm_access.roles`); a top-level claim of that exact name wins. */
function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (path in claims) return claims[path];
  let v: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function roleOf(claims: Readonly<Record<string, unknown>>, o: IssuerOptions): Role {
  if (o.roleClaim === undefined) return 'user';
  const raw = claimAt(claims, o.roleClaim);
  const values = (Array.isArray(raw) ? raw : [raw]).filter((v): v is string => typeof v === 'string');
  return values.some((v) => Object.hasOwn(o.roleMap, v) && o.roleMap[v] === 'admin') ? 'admin' : 'user';
}

/**
 * The verified ID token claims → the answer: the username claim lower-cased, which must then
 * be a valid HackStream username; otherwise the login is denied with the reason.
 */
export function identityOf(key: string, claims: Readonly<Record<string, unknown>> | undefined, o: IssuerOptions): FlowAnswer {
  if (!claims) return { result: 'deny', reason: 'the provider returned no ID token' };
  const sub = claims.sub;
  if (typeof sub !== 'string' || sub === '') return { result: 'deny', reason: 'the ID token has no subject' };
  const name = claimAt(claims, o.usernameClaim);
  if (typeof name !== 'string') return { result: 'deny', reason: `the ID token has no ${o.usernameClaim} claim (usernameClaim)` };
  const username = name.toLowerCase();
  if (!USERNAME.test(username)) return { result: 'deny', reason: `the ${o.usernameClaim} claim is not a valid username (3-64 of a-z 0-9 . _ -)` };
  return { result: 'ok', identity: { username, role: roleOf(claims, o), source: `oidc:${key}`, subject: sub } };
}
