import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isAppError } from '../../core/errors.js';
import { SessionEntity, UserEntity } from '../../core/store/entities.js';
import { startApi, type TestApi } from '../helpers/api.js';

/*
 * The quota race (reliability A11): sessions come with issue 4, so the race runs through the
 * path session creation will use, `control.quotas.admit(user, request, claim)`, with a claim
 * that inserts the session row as the session manager will. The policy (quota-default) reads
 * usage from the sessions table through the plugin host while the user's KV lock is held.
 */

const CREATE = { action: 'session.create', profile: 'ephemeral' } as const;

for (const combo of [
  { db: 'postgres', kv: 'redis' },
  { db: 'embedded', kv: 'memory' },
] as const) {
  describe(`quotas (${combo.db} + ${combo.kv})`, () => {
    let api: TestApi;
    let userId: string;
    before(async () => {
      api = await startApi(combo);
      userId = await api.createUser('quincy', 'quincy password', { quota: { max_sessions: 2 } });
    });
    after(async () => {
      await api?.close();
    });

    const admit = async () => {
      const { control, db } = api.gw.app;
      const user = await db.dataSource.getRepository(UserEntity).findOneByOrFail({ id: userId });
      return control.quotas.admit(user, CREATE, async () => {
        const repo = db.dataSource.getRepository(SessionEntity);
        return repo.save(repo.create({ userId, state: 'starting', app: 'firefox', url: null, profile: 'ephemeral', quality: 'auto' }));
      });
    };

    it('20 concurrent admits against a limit of 2 admit exactly 2; the rest get QUOTA_EXCEEDED', async () => {
      const results = await Promise.allSettled(Array.from({ length: 20 }, admit));
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      assert.equal(ok.length, 2);
      assert.equal(refused.length, 18);
      for (const e of refused) assert.ok(isAppError(e) && e.code === 'QUOTA_EXCEEDED' && e.status === 409, String(e));
      const rows = await api.gw.app.db.dataSource.getRepository(SessionEntity).countBy({ userId });
      assert.equal(rows, 2);
    });

    it('GET /v1/quotas shows the effective quota and the current use', async () => {
      const pair = await api.login('quincy', 'quincy password');
      const r = await api.request('GET', '/v1/quotas', { token: pair.access_token });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, {
        quota: { max_sessions: 2, cpus: 1, memory_mb: 2048, idle_timeout_minutes: 30, max_duration_minutes: 480, storage_mb: 1024, profile_mb: 512 },
        usage: { sessions: 2, storage_mb: 0, profile: null },
        override: { max_sessions: 2 },
      });
    });

    it('an admin raising the limit lets exactly one more in', async () => {
      const admin = await api.adminToken();
      assert.equal((await api.request('PATCH', `/v1/users/${userId}`, { token: admin, body: { quota: { max_sessions: 3 } } })).status, 200);
      const results = await Promise.allSettled(Array.from({ length: 10 }, admit));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    });
  });
}
