import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { dropSchema, TEST_DATABASE_URL } from '../helpers/store.js';
import { crashAfterReadyPreload } from '../helpers/faults.js';
import { scratchDirs } from '../helpers/tmp.js';

/*
 * A control process that dies of an unhandled error writes a sys_crash audit row before it
 * exits 1 (issue 10). The fault is a FAKE, because no request can cause one: a preload that
 * throws once control said ready.
 */
const ENTRY = join(import.meta.dirname, '../../server/control-main.ts');
const dirs = scratchDirs('hs-control-crash-');

describe('control dying of an unhandled error', () => {
  const schema = `t_crash_${randomBytes(4).toString('hex')}`;
  after(() => dropSchema(schema));

  it('writes a sys_crash audit row, then exits 1', async () => {
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    const url = new URL(TEST_DATABASE_URL);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const dataDir = dirs();
    const child = fork(ENTRY, [], {
      execArgv: ['--import', 'tsx', '--import', crashAfterReadyPreload(dirs(), 'injected fault after ready')],
      env: {
        PATH: process.env.PATH ?? '',
        HACKSTREAM_DATA_DIR: dataDir,
        HACKSTREAM_RUN_DIR: join(dataDir, 'run'),
        HACKSTREAM_DATABASE_URL: url.toString(),
        HACKSTREAM_PUBLIC_HOST: 'hackstream.test',
        HACKSTREAM_ADMIN_PASSWORD: 'crash test admin password',
        HACKSTREAM_POOL_SIZE: '0',
        HACKSTREAM_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    let ready = false;
    child.on('message', (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'type' in m && m.type === 'ready') ready = true;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    try {
      assert.ok(ready, `control got ready before the fault:\n${output.slice(-2000)}`);
      assert.equal(code, 1, output.slice(-2000));
      const rows = await admin.query<{ actor: string; result: string; details: { error?: string } }>(
        `SELECT actor, result, details FROM "${schema}".audit_log WHERE action = 'sys_crash'`,
      );
      assert.equal(rows.rows.length, 1, 'one sys_crash row');
      assert.equal(rows.rows[0]?.actor, 'control');
      assert.equal(rows.rows[0]?.result, 'failure');
      assert.match(String(rows.rows[0]?.details.error), /injected fault after ready/);
      assert.match(output, /unhandled error; exiting/);
    } finally {
      await admin.end();
    }
  });
});
