import type { MigrationInterface, QueryRunner } from 'typeorm';

/*
 * What the session manager keeps per session beyond issue 3's table: which control-plane
 * instance owns it, the limits and deadlines it was started with (so idle and duration
 * checks survive a restart) and when it last went idle.
 */
const UP = [
  `ALTER TABLE sessions
     ADD COLUMN instance_id text,
     ADD COLUMN memory_mb integer CONSTRAINT sessions_memory_mb_check CHECK (memory_mb > 0),
     ADD COLUMN cpu_millicores integer CONSTRAINT sessions_cpu_millicores_check CHECK (cpu_millicores > 0),
     ADD COLUMN idle_timeout_s integer CONSTRAINT sessions_idle_timeout_s_check CHECK (idle_timeout_s > 0),
     ADD COLUMN deadline_at timestamptz,
     ADD COLUMN idle_since timestamptz,
     ADD COLUMN pooled boolean NOT NULL DEFAULT false`,
  `CREATE INDEX sessions_instance_live_idx ON sessions (instance_id) WHERE ended_at IS NULL`,
];

export class SessionRuntime1764100000000 implements MigrationInterface {
  name = 'SessionRuntime1764100000000';

  async up(q: QueryRunner): Promise<void> {
    for (const sql of UP) await q.query(sql);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX sessions_instance_live_idx');
    await q.query(`ALTER TABLE sessions
      DROP COLUMN instance_id, DROP COLUMN memory_mb, DROP COLUMN cpu_millicores, DROP COLUMN idle_timeout_s,
      DROP COLUMN deadline_at, DROP COLUMN idle_since, DROP COLUMN pooled`);
  }
}
