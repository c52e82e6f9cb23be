import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SESSION_DOMAIN, startGateway, startTlsBackend, type TestGateway, type TlsBackend } from '../helpers/gateway.js';
import { closed, tlsConnect, waitFor } from '../helpers/net.js';
import { deleteRedisKeys, TEST_REDIS_URL as REDIS_URL } from '../helpers/redis.js';
import { dropSchema, TEST_DATABASE_URL } from '../helpers/store.js';

const NAME = `shared.${SESSION_DOMAIN}`;

describe('two gateways sharing routes through one Redis', () => {
  const prefix = `hstest:${randomBytes(6).toString('hex')}:`;
  const dataDir = mkdtempSync(join(tmpdir(), 'hs-gw2-'));
  let one: TestGateway;
  let two: TestGateway;
  let backend: TlsBackend;

  // Two instances share one database too: the embedded store admits a single process.
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const shared = { redisUrl: REDIS_URL, redisPrefix: prefix, databaseUrl: TEST_DATABASE_URL };

  before(async () => {
    one = await startGateway(shared, { dataDir, app: { databaseSchema: schema } });
    two = await startGateway(shared, { dataDir, app: { databaseSchema: schema } });
    backend = await startTlsBackend(await one.app.certs.issueSessionCert(NAME));
  });
  after(async () => {
    await backend.close();
    await one.close();
    await two.close();
    rmSync(dataDir, { recursive: true, force: true });
    await dropSchema(schema);
    await deleteRedisKeys(prefix);
  });

  it('share one CA when they share a data dir', () => {
    assert.equal(one.ca, two.ca);
  });

  it('a route added through one gateway routes on the other', async () => {
    await one.app.routes.add(NAME, { host: '127.0.0.1', port: backend.port });
    assert.ok(await waitFor(() => two.app.routes.lookup(NAME) !== undefined, 1000), 'propagated within 1 s');
    for (const gw of [one, two]) {
      const s = await tlsConnect({ port: gw.port, servername: NAME, ca: one.ca });
      assert.equal(s.getPeerCertificate().subjectaltname, `DNS:${NAME}`);
      s.destroy();
    }
  });

  it('a route removed on one gateway stops routing on the other within a second, open tunnels included', async () => {
    const open = await tlsConnect({ port: two.port, servername: NAME, ca: one.ca });
    const t0 = Date.now();
    await one.app.routes.remove(NAME);
    await closed(open);
    const ms = Date.now() - t0;
    assert.ok(ms < 1000, `tunnel on the other gateway closed after ${ms} ms`);
    await assert.rejects(tlsConnect({ port: two.port, servername: NAME, ca: one.ca }), /unrecognized.name/i);
  });
});
