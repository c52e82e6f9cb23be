/*
 * Action names. Where the OWASP Logging Vocabulary Cheat Sheet has a word for the event we
 * use it as is (its `event:param` suffix goes into `target` instead); the few HackStream
 * additions follow the same `area_event` shape. "session" means a user's running app
 * (house vocabulary), not a login: logins are `authn_*` and their tokens `authn_token_*`.
 */

export const AUDIT_ACTIONS = [
  // Authentication (OWASP authn_*).
  'authn_login_success',
  'authn_login_successafterfail',
  'authn_login_fail',
  'authn_login_fail_max',
  'authn_login_lock',
  'authn_password_change',
  'authn_password_change_fail',
  'authn_token_created',
  'authn_token_revoked',
  'authn_token_reuse',
  'authn_token_delete',
  /** HackStream: the caller logged out (its tokens were revoked). */
  'authn_logout',
  /** HackStream: a refresh token was exchanged for a new pair. */
  'authn_token_refreshed',
  // Authorization (OWASP authz_*).
  'authz_fail',
  'authz_change',
  'authz_admin',
  // Abuse and input (OWASP).
  'excess_rate_limit_exceeded',
  'input_validation_fail',
  // Users (OWASP user_*, privilege_*).
  'user_created',
  'user_updated',
  'user_archived',
  'user_deleted',
  'privilege_permissions_changed',
  // Sessions, i.e. running apps (HackStream; OWASP's session_created is reused by name).
  'session_created',
  /** HackStream: the session's container is up (xpra listening, Firefox's window mapped). */
  'session_ready',
  'session_connected',
  /** HackStream: the last client detached; the idle timeout runs from here. */
  'session_idle',
  /** HackStream: a one-time connect token was issued (the token itself is never recorded). */
  'session_connect_token',
  'session_stopping',
  'session_stopped',
  'session_failed',
  /** HackStream: a live session was taken over after a control-plane restart. */
  'session_adopted',
  /** HackStream: the reconciler removed what no live session owns (a container, a route). */
  'session_reconciled',
  // Persistent profiles (HackStream): a user's profile volume made, grown or deleted.
  'profile_created',
  'profile_grown',
  'profile_deleted',
  // The system (OWASP sys_*).
  'sys_startup',
  'sys_shutdown',
  'sys_restart',
  'sys_crash',
  'sys_monitor_disabled',
  'sys_monitor_enabled',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** The shape audit_log accepts (its CHECK constraint); plugin-defined actions must match it too. */
export const AUDIT_ACTION_PATTERN = /^[a-z][a-z0-9_.:]{0,63}$/;

const KNOWN = new Set<string>(AUDIT_ACTIONS);

export function isAuditAction(value: string): value is AuditAction {
  return KNOWN.has(value);
}
