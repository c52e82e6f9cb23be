import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { runAdminCli, type CliIo } from '../../core/admin-cli.js';
import type { AuditEvent } from '../../core/plugin/contract.js';
import { startApi, type TestApi } from '../helpers/api.js';

const AUDIT_FILE_PLUGIN = fileURLToPath(new URL('../fixtures/plugins/audit-file', import.meta.url));

function io(): CliIo & { text: () => string; errors: () => string } {
  let out = '';
  let err = '';
  return { out: (t) => void (out += t), err: (t) => void (err += t), readLine: async () => 'a password from stdin 42', text: () => out, errors: () => err };
}

/** `npm run admin` starts the configured plugins, so its account changes reach their audit sinks. */
describe('admin CLI with a plugin audit sink loaded by path', () => {
  let api: TestApi;
  const dir = mkdtempSync(join(tmpdir(), 'hs-admin-plugins-'));
  const sinkFile = join(dir, 'audit.jsonl');
  const configFile = join(dir, 'config.json');
  let env: NodeJS.ProcessEnv;
  const cli = async (args: string[], e = env) => {
    const t = io();
    const code = await runAdminCli(args, t, e);
    return { code, out: t.text(), err: t.errors() };
  };
  const events = (): AuditEvent[] => (existsSync(sinkFile) ? readFileSync(sinkFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent) : []);

  before(async () => {
    api = await startApi({ db: 'postgres' });
    writeFileSync(configFile, JSON.stringify({ plugins: { 'auth-local': {}, 'quota-default': {}, [AUDIT_FILE_PLUGIN]: { file: sinkFile } } }));
    env = { HACKSTREAM_CONFIG: configFile, HACKSTREAM_DATA_DIR: api.dataDir, HACKSTREAM_DATABASE_URL: api.databaseUrl, HACKSTREAM_LOG_LEVEL: 'silent' };
  });
  after(async () => {
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('create, disable and reset-password each reach the sink, as the rows the audit holds', async () => {
    const created = await cli(['create', 'sink-alice', '--password-stdin']);
    assert.equal(created.code, 0, created.err);
    const id = /\(([0-9a-f-]{36})\)/.exec(created.out)?.[1];
    assert.ok(id);
    assert.equal((await cli(['disable', 'sink-alice'])).code, 0);
    assert.equal((await cli(['reset-password', 'sink-alice', '--password-stdin'])).code, 0);
    const seen = events();
    assert.ok(seen.length >= 3, JSON.stringify(seen));
    assert.ok(seen.every((e) => e.actor === `cli:${userInfo().username}` && e.target === id), JSON.stringify(seen));
    const rows = await api.request('GET', `/v1/audit?user=${id}&limit=20`, { token: await api.adminToken() });
    assert.equal(rows.status, 200, rows.text);
    const ids = (rows.json as { items: { id: string }[] }).items.map((r) => r.id).sort();
    assert.deepEqual(seen.map((e) => e.id).sort(), ids, 'the sink got exactly the committed rows');
  });

  it('refuses a plugins section the server would refuse, with exit 78, before touching the database', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ plugins: { './nowhere': {} } }));
    const r = await cli(['list'], { ...env, HACKSTREAM_CONFIG: bad });
    assert.equal(r.code, 78);
    assert.match(r.err, /plugins\.\.\/nowhere: no file or folder at \.\/nowhere \(resolved to .*hs-admin-plugins-.*\/nowhere\)/);
  });
});
