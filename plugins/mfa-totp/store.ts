import type { PluginStorage } from '../../core/plugin/contract.js';

type Sql = PluginStorage['sql'];
type Query = Sql['query'];

export interface FactorRow {
  readonly sealed: Buffer;
  readonly keyId: string;
  readonly createdAt: Date;
  readonly confirmedAt: Date | null;
  /** The last accepted time step, or null before the first. */
  readonly lastStep: number | null;
}

interface RawFactor extends Record<string, unknown> {
  secret_sealed: Buffer;
  key_id: string;
  created_at: Date;
  confirmed_at: Date | null;
  last_step: string | number | null;
}

/** The plugin's tables (see migrations.ts); every statement runs in the plugin's own schema. */
export interface FactorStore {
  find(userId: string): Promise<FactorRow | null>;
  /** Starts or restarts a pending enrolment; false when a confirmed factor exists (left alone). */
  putPending(userId: string, sealed: Buffer, keyId: string): Promise<boolean>;
  /**
   * Confirms exactly the pending secret that was checked (a newer enrolment in between
   * wins), records `step` as used and replaces the recovery codes. False when it was not pending.
   */
  confirm(userId: string, sealed: Buffer, step: number, recoveryHashes: readonly Buffer[]): Promise<boolean>;
  /** Records `step` as used when it is later than the last one (atomic): false for a replay. */
  useStep(userId: string, step: number): Promise<boolean>;
  /** Marks an unused recovery code of a confirmed factor used (atomic): false when there is none. */
  useRecoveryCode(userId: string, hash: Buffer): Promise<boolean>;
  recoveryCodesLeft(userId: string): Promise<number>;
  /** Removes the user's factor (pending or confirmed) and recovery codes; false when there was none. */
  remove(userId: string): Promise<boolean>;
  /** Whether any secret was sealed with a key other than `keyId`. */
  hasOtherKey(keyId: string): Promise<boolean>;
}

export function factorStore(sql: Sql): FactorStore {
  return {
    async find(userId) {
      const rows = await sql.query<RawFactor>('SELECT secret_sealed, key_id, created_at, confirmed_at, last_step FROM factors WHERE user_id = $1', [userId]);
      const r = rows[0];
      if (!r) return null;
      return { sealed: r.secret_sealed, keyId: r.key_id, createdAt: r.created_at, confirmedAt: r.confirmed_at, lastStep: r.last_step === null ? null : Number(r.last_step) };
    },
    async putPending(userId, sealed, keyId) {
      const rows = await sql.query(
        `INSERT INTO factors (user_id, secret_sealed, key_id) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, key_id = EXCLUDED.key_id, created_at = now()
         WHERE factors.confirmed_at IS NULL
         RETURNING user_id`,
        [userId, sealed, keyId],
      );
      return rows.length === 1;
    },
    confirm(userId, sealed, step, recoveryHashes) {
      return sql.transaction(async ({ query }) => {
        const done = await query(
          `UPDATE factors SET confirmed_at = now(), last_step = $3, last_used_at = now()
           WHERE user_id = $1 AND secret_sealed = $2 AND confirmed_at IS NULL RETURNING user_id`,
          [userId, sealed, step],
        );
        if (done.length !== 1) return false;
        await query('DELETE FROM recovery_codes WHERE user_id = $1', [userId]);
        await insertRecoveryHashes(query, userId, recoveryHashes);
        return true;
      });
    },
    async useStep(userId, step) {
      const rows = await sql.query(
        `UPDATE factors SET last_step = $2, last_used_at = now()
         WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2) RETURNING user_id`,
        [userId, step],
      );
      return rows.length === 1;
    },
    async useRecoveryCode(userId, hash) {
      const rows = await sql.query(
        `UPDATE recovery_codes r SET used_at = now() FROM factors f
         WHERE r.user_id = $1 AND r.code_hash = $2 AND r.used_at IS NULL AND f.user_id = r.user_id AND f.confirmed_at IS NOT NULL
         RETURNING r.user_id`,
        [userId, hash],
      );
      return rows.length === 1;
    },
    async recoveryCodesLeft(userId) {
      const rows = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL', [userId]);
      return rows[0]?.n ?? 0;
    },
    async remove(userId) {
      const rows = await sql.query('DELETE FROM factors WHERE user_id = $1 RETURNING user_id', [userId]);
      return rows.length === 1;
    },
    async hasOtherKey(keyId) {
      const rows = await sql.query('SELECT 1 FROM factors WHERE key_id <> $1 LIMIT 1', [keyId]);
      return rows.length > 0;
    },
  };
}

async function insertRecoveryHashes(query: Query, userId: string, hashes: readonly Buffer[]): Promise<void> {
  if (hashes.length === 0) return;
  const values = hashes.map((_, i) => `($1, $${i + 2})`).join(', ');
  await query(`INSERT INTO recovery_codes (user_id, code_hash) VALUES ${values}`, [userId, ...hashes]);
}
