import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../../core/errors.js';
import { silentLogger } from '../../lib/log.js';
import { openDatabase, type Database } from '../../core/store/database.js';
import { UserEntity } from '../../core/store/entities.js';
import { isDatabaseUnavailable, mapDatabaseError } from '../../core/store/errors.js';
import { dropSchema, startFaultProxy, tempDir, TEST_DATABASE_URL, type FaultProxy } from '../helpers/store.js';

/*
 * Reliability D8 at the store's level: Postgres going away mid-transaction keeps nothing of
 * it, queries fail at once with an error that maps to 503, and the pool reconnects by
 * itself. A fault proxy stands in for killing the Postgres other tests share.
 */

describe('database on a failing Postgres', () => {
  let proxy: FaultProxy;
  let db: Database;
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const dataDir = tempDir();

  before(async () => {
    const target = new URL(TEST_DATABASE_URL);
    proxy = await startFaultProxy(Number(target.port || 5432), target.hostname);
    const viaProxy = new URL(TEST_DATABASE_URL);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    db = await openDatabase({ databaseUrl: viaProxy.toString(), schema, dataDir, logger: silentLogger() });
  });
  after(async () => {
    proxy?.setMode('pass');
    await db?.close();
    await proxy?.close();
    await dropSchema(schema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('loses the whole transaction when the server dies inside it, answers 503, and reconnects', async () => {
    const users = db.dataSource.getRepository(UserEntity);
    const tx = db.dataSource.transaction(async (m) => {
      await m.getRepository(UserEntity).save({ username: 'half-done' });
      proxy.setMode('refuse');
      await sleep(50);
      await m.getRepository(UserEntity).save({ username: 'never' });
    });
    const err = await tx.then(
      () => assert.fail('the transaction cannot commit'),
      (e: unknown) => e,
    );
    assert.ok(isDatabaseUnavailable(err), `unavailable: ${(err as Error).message}`);

    const t0 = Date.now();
    const down = await users.count().catch((e: unknown) => e);
    assert.ok(Date.now() - t0 < 1_000, 'fails fast while down');
    const mapped = mapDatabaseError(down);
    assert.ok(mapped instanceof AppError && mapped.status === 503, 'maps to 503');
    assert.doesNotMatch(mapped.message, /ECONNREFUSED|127\.0\.0\.1|terminated/, 'a generic message');
    await assert.rejects(db.ping());

    proxy.setMode('pass');
    const t1 = Date.now();
    for (;;) {
      try {
        await db.ping();
        break;
      } catch (e) {
        if (Date.now() - t1 > 10_000) throw e;
        await sleep(100);
      }
    }
    assert.ok(Date.now() - t1 < 10_000, 'pool reconnected within 10 s');
    assert.equal(await users.countBy({ username: 'half-done' }), 0, 'nothing of the lost transaction was kept');
  });
});
