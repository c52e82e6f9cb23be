import type { PluginMigration } from '../../core/plugin/contract.js';

/**
 * One factor per user: pending (confirmed_at null) until a code proves the app has the
 * secret. `last_step` is the last accepted TOTP time step: a code of that step or an earlier
 * one is refused, so each code works once. Recovery codes are stored as SHA-256 hashes.
 */
export const migrations: readonly PluginMigration[] = [
  {
    id: '001-factors',
    up: `
      CREATE TABLE factors (
        user_id uuid PRIMARY KEY,
        secret_sealed bytea NOT NULL,
        key_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        confirmed_at timestamptz,
        last_step bigint,
        last_used_at timestamptz
      );
      CREATE TABLE recovery_codes (
        user_id uuid NOT NULL REFERENCES factors (user_id) ON DELETE CASCADE,
        code_hash bytea NOT NULL,
        used_at timestamptz,
        PRIMARY KEY (user_id, code_hash)
      );
    `,
  },
];
