import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/*
 * The shipped alerting rules (deploy/prometheus/alerts.yml): `promtool check rules` accepts
 * them, `promtool test rules` runs their unit tests (alerts.test.yml), and every alert has a
 * test that expects it to fire.
 */

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const run = promisify(execFile);

describe('alerting rules (promtool)', () => {
  it('promtool check rules accepts alerts.yml', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', 'alerts.yml'], { cwd: DIR });
    assert.match(stdout, /SUCCESS: \d+ rules found/);
  });

  it('promtool test rules passes alerts.test.yml', async () => {
    const r = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: DIR }).catch((err: { stdout?: string; stderr?: string }) => {
      assert.fail(`promtool test rules failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    });
    assert.match(r.stdout, /SUCCESS/);
  });

  it('every alert has a test case that expects it to fire', () => {
    const alerts = [...readFileSync(`${DIR}alerts.yml`, 'utf8').matchAll(/^\s+- alert: (\S+)$/gm)].map((m) => m[1]);
    const tests = readFileSync(`${DIR}alerts.test.yml`, 'utf8');
    const firing = new Set(
      [...tests.matchAll(/alertname: (\S+)\n\s+exp_alerts:\n\s+- exp_labels/g)].map((m) => m[1]),
    );
    assert.ok(alerts.length >= 6);
    for (const required of ['HackStreamHostFull', 'HackStreamLaunchesFailing', 'HackStreamPoolEmpty', 'HackStreamAuditChainBroken', 'HackStreamCertificateExpiring']) {
      assert.ok(alerts.includes(required), `alerts.yml has ${required}`);
    }
    assert.deepEqual(alerts.filter((a) => !firing.has(a)), [], 'alerts without a firing test');
  });

  it('promtool test rules fails when an alert does not fire as its test expects (the tests bite)', async () => {
    const broken = readFileSync(`${DIR}alerts.yml`, 'utf8').replace('hackstream_audit_chain_valid == 0', 'hackstream_audit_chain_valid == 2');
    const dir = mkdtempSync(join(tmpdir(), 'hs-rules-'));
    try {
      writeFileSync(join(dir, 'alerts.yml'), broken);
      copyFileSync(`${DIR}alerts.test.yml`, join(dir, 'alerts.test.yml'));
      const err = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: dir }).then(
        () => undefined,
        (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
      );
      assert.ok(err, 'promtool must fail');
      assert.match(err, /HackStreamAuditChainBroken/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
