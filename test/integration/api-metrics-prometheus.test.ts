import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { exposedNames, namesInExpr, startConnectProxy, startPrometheus, type TestPrometheus } from '../helpers/prometheus.js';

/*
 * Debian's real Prometheus scrapes a running HackStream with the scrape credential (and a
 * second job with a wrong one), loads the shipped alerting rules, and the test reads the
 * samples back through Prometheus's own HTTP API. Also: who may read /v1/metrics, and the
 * Grafana dashboard asks only for series the process exposes.
 */

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const SCRAPE_TOKEN = randomBytes(32).toString('base64url');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('metrics scraped by a real Prometheus', () => {
  let api: TestApi;
  let prom: TestPrometheus;
  let proxy: Awaited<ReturnType<typeof startConnectProxy>>;
  before(async () => {
    api = await startApi({ captureLogs: true, config: { metrics: { scrapeTokenSha256: sha256(SCRAPE_TOKEN).toUpperCase(), auditVerifyIntervalSeconds: 1 } } });
    // One failed and one successful login before Prometheus looks.
    const bad = await api.request('POST', '/v1/login', { body: { username: 'root-admin', password: 'not the password' } });
    assert.equal(bad.status, 401);
    await api.adminToken();
    // Prometheus dials https://hackstream.test:<port> through this proxy (the name has no DNS).
    proxy = await startConnectProxy({ port: api.port });
    prom = await startPrometheus(
      (dir) => `
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - ${join(DEPLOY, 'prometheus', 'alerts.yml')}
scrape_configs:
${['hackstream', 'hackstream-wrong']
  .map(
    (job) => `  - job_name: ${job}
    scheme: https
    metrics_path: /v1/metrics
    proxy_url: ${proxy.url}
    authorization:
      type: Bearer
      credentials_file: ${join(dir, job === 'hackstream' ? 'token' : 'wrong-token')}
    tls_config:
      ca_file: ${join(dir, 'ca.pem')}
      server_name: ${PUBLIC_HOST}
    static_configs:
      - targets: ['${PUBLIC_HOST}:${api.port}']`,
  )
  .join('\n')}
`,
      { token: SCRAPE_TOKEN, 'wrong-token': randomBytes(32).toString('base64url'), 'ca.pem': api.gw.ca },
    );
  });
  after(async () => {
    await prom?.close();
    await proxy?.close();
    await api?.close();
  });

  /** The value of `q` once Prometheus has a sample for it that `ok` accepts. */
  const valueOf = (q: string, ok: (v: number) => boolean = () => true) =>
    prom.until(`a sample of ${q}`, async () => {
      const [s] = await prom.query(q);
      const v = s ? Number(s.value[1]) : undefined;
      return v !== undefined && ok(v) ? v : undefined;
    });

  it('scrapes with the scrape credential; the failed and the successful login are counted by outcome', async () => {
    assert.equal(await valueOf('up{job="hackstream"}', (v) => v === 1), 1);
    assert.ok((await valueOf('hackstream_logins_total{job="hackstream",outcome="failure"}', (v) => v >= 1)) >= 1);
    assert.ok((await valueOf('hackstream_logins_total{job="hackstream",outcome="success"}', (v) => v >= 1)) >= 1);
    assert.equal(await valueOf('hackstream_logins_total{job="hackstream",outcome="throttled"}'), 0);
  });

  it('a wrong credential is a failed scrape with a 401', async () => {
    assert.equal(await valueOf('up{job="hackstream-wrong"}', (v) => v === 0), 0);
    const targets = (await prom.api('/api/v1/targets')) as { activeTargets: { labels: { job: string }; lastError: string }[] };
    const wrong = targets.activeTargets.find((t) => t.labels.job === 'hackstream-wrong');
    assert.match(wrong?.lastError ?? '', /401/);
  });

  it('key series have sensible values', async () => {
    const now = Date.now() / 1000;
    assert.ok((await valueOf('hackstream_tls_certificate_not_after_seconds{job="hackstream",certificate="api"}')) > now, 'the API certificate is valid now');
    assert.ok((await valueOf('hackstream_tls_certificate_not_after_seconds{job="hackstream",certificate="ca"}')) > now);
    assert.ok((await valueOf('hackstream_gateway_terminated_total{job="hackstream"}', (v) => v >= 1)) >= 1, 'the edge counted the TLS it terminated');
    assert.equal(await valueOf('sum(hackstream_sessions{job="hackstream"})'), 0);
    assert.equal((await prom.query('hackstream_sessions{job="hackstream"}')).length, 5, 'one series per live state');
    assert.equal(await valueOf('hackstream_pool_target_containers{job="hackstream"}'), 0);
    assert.equal(await valueOf('hackstream_host_memory_capacity_bytes{job="hackstream"}'), 16_384 * 1024 * 1024);
    assert.ok((await valueOf('process_resident_memory_bytes{job="hackstream"}')) > 0);
    assert.ok((await valueOf('sum(hackstream_agent_rpc_duration_seconds_count{job="hackstream"})', (v) => v >= 1)) >= 1, 'control called the agent');
    assert.equal(await valueOf('hackstream_audit_chain_valid{job="hackstream"}'), 1);
  });

  it('evaluates the shipped rules against the real series', async () => {
    const rules = await prom.until('every rule evaluated', async () => {
      const data = (await prom.api('/api/v1/rules')) as { groups: { rules: { name: string; health: string; state: string; lastEvaluation: string }[] }[] };
      const all = data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((r) => !r.lastEvaluation.startsWith('0001')) ? all : undefined;
    });
    assert.deepEqual(rules.filter((r) => r.health !== 'ok').map((r) => r.name), []);
    const firing = rules.filter((r) => r.state === 'firing').map((r) => r.name);
    assert.deepEqual(firing, [], 'nothing is wrong with a fresh HackStream');
  });

  it('names only series the process exposes, in the rules and in the Grafana dashboard', async () => {
    const r = await api.request('GET', '/v1/metrics', { token: SCRAPE_TOKEN });
    const exposed = exposedNames(r.text);
    exposed.add('up');
    const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'hackstream.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
      templating: { list: { name: string; definition?: string }[] };
    };
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
      ...dashboard.templating.list.filter((v) => v.definition).map((v) => ({ where: `variable ${v.name}`, expr: v.definition ?? '' })),
    ];
    assert.ok(exprs.length >= 10, 'the dashboard has queries');
    const rulesText = readFileSync(join(DEPLOY, 'prometheus', 'alerts.yml'), 'utf8');
    const ruleExprs = [...rulesText.matchAll(/expr: (\|\n(?: {10}.*\n)+|.*)/g)].map((m) => ({ where: 'alerts.yml', expr: m[1] ?? '' }));
    assert.ok(ruleExprs.length >= 8);
    const unknown: string[] = [];
    for (const { where, expr } of [...exprs, ...ruleExprs]) {
      const names = namesInExpr(expr);
      if (names.length === 0) unknown.push(`${where}: no metric in ${expr}`);
      for (const n of names) if (!exposed.has(n)) unknown.push(`${where}: ${n}`);
    }
    assert.deepEqual(unknown, []);
  });

  it('who may read /v1/metrics: the scrape credential or an admin; 401 JSON otherwise; the credential is never logged', async () => {
    const scraped = await api.request('GET', '/v1/metrics', { token: SCRAPE_TOKEN });
    assert.equal(scraped.status, 200);
    assert.match(String(scraped.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.equal((await api.request('GET', '/v1/metrics', { token: await api.adminToken() })).status, 200, 'an admin token still works');
    for (const [desc, token] of [
      ['no credential', undefined],
      ['a wrong credential', randomBytes(32).toString('base64url')],
      ['the credential with a character changed', `${SCRAPE_TOKEN.slice(0, -1)}${SCRAPE_TOKEN.endsWith('A') ? 'B' : 'A'}`],
      ['the credential\'s hash', sha256(SCRAPE_TOKEN)],
    ] as const) {
      const r = await api.request('GET', '/v1/metrics', token ? { token } : {});
      assert.equal(r.status, 401, desc);
      assert.equal(errorCode(r), 'AUTH_REQUIRED', desc);
    }
    const basic = await api.request('GET', '/v1/metrics', { headers: { authorization: `Basic ${Buffer.from(`x:${SCRAPE_TOKEN}`).toString('base64')}` } });
    assert.equal(basic.status, 401, 'only as a bearer token');
    const user = await api.createUser('metrics-user', 'metrics user password');
    assert.ok(user);
    const userToken = (await api.login('metrics-user', 'metrics user password')).access_token;
    const forbidden = await api.request('GET', '/v1/metrics', { token: userToken });
    assert.equal(forbidden.status, 403);
    assert.equal(errorCode(forbidden), 'FORBIDDEN');
    assert.ok(api.logs.length > 0);
    assert.ok(!api.logs.some((l) => l.includes(SCRAPE_TOKEN)), 'the scrape credential is in no log line');
  });

  it('a tampered audit row turns hackstream_audit_chain_valid to 0 and fires HackStreamAuditChainBroken', async () => {
    const ds = api.gw.app.db.dataSource;
    await ds.transaction(async (m) => {
      await m.query('GRANT UPDATE ON audit_log TO CURRENT_USER');
      await m.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
      await m.query(`UPDATE audit_log SET actor = 'someone-else' WHERE id = (SELECT min(id) FROM audit_log)`);
      await m.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
      await m.query('REVOKE UPDATE ON audit_log FROM CURRENT_USER');
    });
    assert.equal(await valueOf('hackstream_audit_chain_valid{job="hackstream"}', (v) => v === 0), 0);
    const alert = await valueOf('ALERTS{alertname="HackStreamAuditChainBroken",alertstate="firing",job="hackstream"}');
    assert.equal(alert, 1);
  });
});
