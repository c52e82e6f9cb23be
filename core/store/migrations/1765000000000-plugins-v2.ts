import type { MigrationInterface, QueryRunner } from 'typeorm';

/*
 * Plugin contract version 2: accounts owned by an external identity source (an LDAP or
 * OIDC provider provisions them just in time; null is a local account), and the record of
 * the migrations each plugin brought for its own schema.
 */
const UP = [
  `ALTER TABLE users ADD COLUMN source text
     CONSTRAINT users_source_check CHECK (source ~ '^[a-z0-9][a-z0-9:._-]{0,127}$')`,
  `CREATE TABLE plugin_migrations (
     plugin text NOT NULL,
     id text NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (plugin, id)
   )`,
];

export class PluginsV21765000000000 implements MigrationInterface {
  name = 'PluginsV21765000000000';

  async up(q: QueryRunner): Promise<void> {
    for (const sql of UP) await q.query(sql);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE plugin_migrations');
    await q.query('ALTER TABLE users DROP COLUMN source');
  }
}
