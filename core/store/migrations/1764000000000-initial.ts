import type { MigrationInterface, QueryRunner } from 'typeorm';

/*
 * Hand-written, one dialect: the same SQL runs on PostgreSQL 15+ and on the embedded
 * PGlite store. Migrations never change once released; later changes are new files.
 */

const USERS = `
CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  username text NOT NULL
    CONSTRAINT users_username_shape CHECK (char_length(username) BETWEEN 1 AND 128 AND username !~ '[[:cntrl:]]'),
  password_hash text,
  role text NOT NULL DEFAULT 'user' CONSTRAINT users_role_check CHECK (role IN ('admin', 'user')),
  disabled boolean NOT NULL DEFAULT false,
  token_epoch integer NOT NULL DEFAULT 0 CONSTRAINT users_token_epoch_check CHECK (token_epoch >= 0),
  quota_max_sessions integer CONSTRAINT users_quota_max_sessions_check CHECK (quota_max_sessions >= 0),
  quota_cpu_millicores integer CONSTRAINT users_quota_cpu_millicores_check CHECK (quota_cpu_millicores > 0),
  quota_memory_mb integer CONSTRAINT users_quota_memory_mb_check CHECK (quota_memory_mb > 0),
  quota_idle_timeout_s integer CONSTRAINT users_quota_idle_timeout_s_check CHECK (quota_idle_timeout_s > 0),
  quota_max_duration_s integer CONSTRAINT users_quota_max_duration_s_check CHECK (quota_max_duration_s > 0),
  quota_storage_mb integer CONSTRAINT users_quota_storage_mb_check CHECK (quota_storage_mb >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
)`;

const REFRESH_TOKENS = `
CREATE TABLE refresh_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id uuid NOT NULL,
  token_hash text NOT NULL CONSTRAINT refresh_tokens_token_hash_key UNIQUE
    CONSTRAINT refresh_tokens_token_hash_sha256 CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  parent_id uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz
)`;

const SESSIONS = `
CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  state text NOT NULL CONSTRAINT sessions_state_check
    CHECK (state IN ('starting', 'ready', 'connected', 'idle', 'stopping', 'stopped', 'failed')),
  app text NOT NULL CONSTRAINT sessions_app_check CHECK (char_length(app) BETWEEN 1 AND 64),
  url text,
  profile text NOT NULL CONSTRAINT sessions_profile_check CHECK (profile IN ('ephemeral', 'persist')),
  quality text NOT NULL CONSTRAINT sessions_quality_check CHECK (quality IN ('low', 'auto', 'high')),
  container_id text,
  hostname text,
  upstream jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz,
  failure_reason text,
  CONSTRAINT sessions_ended_iff_final CHECK ((state IN ('stopped', 'failed')) = (ended_at IS NOT NULL))
)`;

const QUOTA_DEFAULTS = `
CREATE TABLE quota_defaults (
  role text PRIMARY KEY CONSTRAINT quota_defaults_role_check CHECK (role IN ('admin', 'user')),
  max_sessions integer NOT NULL CONSTRAINT quota_defaults_max_sessions_check CHECK (max_sessions >= 0),
  cpu_millicores integer NOT NULL CONSTRAINT quota_defaults_cpu_millicores_check CHECK (cpu_millicores > 0),
  memory_mb integer NOT NULL CONSTRAINT quota_defaults_memory_mb_check CHECK (memory_mb > 0),
  idle_timeout_s integer NOT NULL CONSTRAINT quota_defaults_idle_timeout_s_check CHECK (idle_timeout_s > 0),
  max_duration_s integer NOT NULL CONSTRAINT quota_defaults_max_duration_s_check CHECK (max_duration_s > 0),
  storage_mb integer NOT NULL CONSTRAINT quota_defaults_storage_mb_check CHECK (storage_mb >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
)`;

// Idle 30 min (OWASP's low-risk range), at most 8 h for users and 12 h for admins (ASVS L2
// re-authentication after 12 h); memory sized for one Firefox.
const QUOTA_SEED = `
INSERT INTO quota_defaults (role, max_sessions, cpu_millicores, memory_mb, idle_timeout_s, max_duration_s, storage_mb)
VALUES ('user', 2, 1000, 2048, 1800, 28800, 1024),
       ('admin', 4, 2000, 4096, 1800, 43200, 4096)`;

const AUDIT_LOG = `
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL CONSTRAINT audit_log_actor_check CHECK (char_length(actor) BETWEEN 1 AND 256),
  action text NOT NULL CONSTRAINT audit_log_action_check CHECK (action ~ '^[a-z][a-z0-9_.:]{0,63}$'),
  target text,
  source_ip inet,
  result text NOT NULL CONSTRAINT audit_log_result_check CHECK (result IN ('success', 'failure')),
  details jsonb NOT NULL DEFAULT '{}'::jsonb CONSTRAINT audit_log_details_check CHECK (jsonb_typeof(details) = 'object'),
  prev_hash text NOT NULL CONSTRAINT audit_log_prev_hash_key UNIQUE
    CONSTRAINT audit_log_prev_hash_sha256 CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text NOT NULL CONSTRAINT audit_log_hash_key UNIQUE
    CONSTRAINT audit_log_hash_sha256 CHECK (hash ~ '^[0-9a-f]{64}$')
)`;

// Append-only for everyone, owner and superuser included: a trigger refuses UPDATE, DELETE
// and TRUNCATE. The REVOKEs make the refusal a plain permission error for a non-superuser
// role too; a deployment with a separate owner role should grant its app role only SELECT
// and INSERT on audit_log (and USAGE on its sequence).
const AUDIT_APPEND_ONLY = [
  `CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$`,
  // Statement level: the attempt fails even when it would touch no row.
  `CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
   FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()`,
  `REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC`,
  `REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER`,
];

const INDEXES = [
  `CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username))`,
  `CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id)`,
  `CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id)`,
  `CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at)`,
  `CREATE INDEX sessions_user_live_idx ON sessions (user_id) WHERE ended_at IS NULL`,
  `CREATE INDEX sessions_user_created_idx ON sessions (user_id, created_at DESC)`,
  `CREATE UNIQUE INDEX sessions_hostname_live_key ON sessions (hostname) WHERE ended_at IS NULL`,
  `CREATE INDEX audit_log_at_idx ON audit_log (at)`,
  `CREATE INDEX audit_log_actor_at_idx ON audit_log (actor, at)`,
  `CREATE INDEX audit_log_action_at_idx ON audit_log (action, at)`,
  `CREATE INDEX audit_log_target_at_idx ON audit_log (target, at)`,
];

export class Initial1764000000000 implements MigrationInterface {
  name = 'Initial1764000000000';

  async up(q: QueryRunner): Promise<void> {
    for (const sql of [USERS, REFRESH_TOKENS, SESSIONS, QUOTA_DEFAULTS, QUOTA_SEED, AUDIT_LOG, ...AUDIT_APPEND_ONLY, ...INDEXES]) {
      await q.query(sql);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['audit_log', 'quota_defaults', 'sessions', 'refresh_tokens', 'users']) {
      await q.query(`DROP TABLE ${table}`);
    }
    await q.query('DROP FUNCTION audit_log_append_only()');
  }
}
