import type { MigrationInterface, QueryRunner } from 'typeorm';

/* A per-user override of the persistent profile's size (quota `profileMb`), as the other quota fields have. */
export class QuotaProfile1766000000000 implements MigrationInterface {
  name = 'QuotaProfile1766000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE users ADD COLUMN quota_profile_mb integer CONSTRAINT users_quota_profile_mb_check CHECK (quota_profile_mb >= 32)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE users DROP COLUMN quota_profile_mb');
  }
}
