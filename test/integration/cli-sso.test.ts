import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../client/errors.js';
import { errorCode, startApi, type TestApi } from '../helpers/api.js';
import { runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { PUBLIC_HOST } from '../helpers/gateway.js';
import { freePort } from '../helpers/net.js';
import { midStep, oathtoolCode, STEP_MS } from '../helpers/oathtool.js';
import { startOp, TestBrowser, type TestOp } from '../helpers/oidc-op.js';
import { scratchDirs } from '../helpers/tmp.js';

// `hackstream login --sso` against the real server (auth-oidc and mfa-totp enabled) and a real OpenID provider.
const scratch = scratchDirs('hs-cli-sso-');
const DEVICE_TTL_S = 8;
let op: TestOp;
let api: TestApi;
let fingerprint: string;

const explain = (r: CliResult) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

before(async () => {
  op = await startOp({
    dir: scratch(),
    redirectUris: [`https://${PUBLIC_HOST}/v1/auth/flows/op/callback`],
    accounts: { alice: { claims: { preferred_username: 'alice', groups: ['hs-admins'] } }, bob: { claims: { preferred_username: 'bob' } } },
    deviceIntervalS: 1,
    deviceTtlS: DEVICE_TTL_S,
  });
  const op2 = { issuer: `https://localhost:${await freePort()}`, clientId: 'x', clientSecret: 'y', caFile: op.caFile, label: 'Other SSO', discoveryTimeoutMs: 300 };
  api = await startApi({
    captureLogs: true,
    // A wrong second-factor code is a counted failure; the retry right after it is not what this file tests.
    auth: { throttle: { sourceFreeFailures: 5 } },
    config: {
      plugins: {
        'auth-oidc': { issuers: { op: { issuer: op.issuer, label: 'Test SSO', clientId: op.client.clientId, clientSecret: op.client.clientSecret, caFile: op.caFile, scopes: ['openid', 'profile', 'groups'], roleClaim: 'groups', roleMap: { 'hs-admins': 'admin' } }, other: op2 } },
        'auth-local': {},
        'mfa-totp': { keyFile: join(scratch(), 'mfa-totp.key') },
        'quota-default': {},
      },
    },
  });
  fingerprint = new X509Certificate(readFileSync(join(api.dataDir, 'certs', 'api.crt'))).fingerprint256;
});

after(async () => {
  await api?.close();
  await op?.close();
});

/** Enrols the token's user in TOTP (confirmed with the current step's code); returns the secret. */
async function enrolTotp(token: string): Promise<string> {
  const e = await api.request('POST', '/v1/plugins/mfa-totp/enrolment', { token, body: {} });
  assert.equal(e.status, 201, e.text);
  const { secret } = e.json as { secret: string };
  const c = await api.request('POST', '/v1/plugins/mfa-totp/enrolment/confirm', { token, body: { code: await oathtoolCode(secret, await midStep()) } });
  assert.equal(c.status, 200, c.text);
  return secret;
}

/** A code of the next step: the current one was spent confirming, and one step ahead is accepted. */
const nextCode = async (secret: string) => oathtoolCode(secret, (await midStep()) + STEP_MS);

async function home(): Promise<string> {
  const h = scratch();
  const r = await runCli(['configure', '--api-url', `https://${PUBLIC_HOST}:${api.port}`, '--address', '127.0.0.1', '--ca-fingerprint', fingerprint], { home: h });
  assert.equal(r.code, 0, explain(r));
  return h;
}

describe('hackstream login --sso', () => {
  it('--help tells about --sso, --provider and --code', async () => {
    const r = await runCli(['login', '--help'], { home: scratch() });
    assert.equal(r.code, 0);
    for (const flag of ['--sso', '--provider ID', '--code C']) assert.ok(r.stdout.includes(flag), flag);
  });

  it('with several providers and no --provider: lists them and exits 2; an unknown one likewise', async () => {
    const h = await home();
    const r = await runCli(['login', '--sso'], { home: h });
    assert.equal(r.code, EXIT.USAGE, explain(r));
    assert.match(r.stderr, /choose one with --provider <id>:\n\s+op\s+\(Test SSO\)\n\s+other\s+\(Other SSO\)/);
    const u = await runCli(['login', '--sso', '--provider', 'nope'], { home: h });
    assert.equal(u.code, EXIT.USAGE, explain(u));
    assert.match(u.stderr, /no SSO provider "nope"/);
  });

  it('shows the code and URL, waits for approval at the provider, saves the tokens (role from the group)', async () => {
    const h = await home();
    const cli = spawnCli(['login', '--sso', '--provider', 'op'], { home: h });
    const code = await cli.waitFor(/enter the code: (\S+)/, 15_000);
    const complete = await cli.waitFor(/Or open: (\S+)/, 5_000);
    assert.match(cli.stderr(), new RegExp(`Open ${op.issuer}/device and enter the code: ${code}`));
    assert.equal(new URL(complete).searchParams.get('user_code'), code);
    await op.approveDevice(new TestBrowser([op.ca]), complete, 'alice');
    assert.equal(await cli.exited(20_000), 0, cli.stderr());
    assert.match(cli.stderr(), /Logged in as alice\./);
    const tokens = JSON.parse(readFileSync(join(h, '.config', 'hackstream', 'tokens.json'), 'utf8')) as { accessToken: string; username: string };
    assert.equal(tokens.username, 'alice');
    const me = await api.request('GET', '/v1/me', { token: tokens.accessToken });
    assert.equal(me.status, 200);
    assert.deepEqual([(me.json as { username: string }).username, (me.json as { role: string }).role], ['alice', 'admin']);
    const list = await runCli(['list'], { home: h });
    assert.equal(list.code, 0, explain(list));
    assert.ok(!api.logs.join('\n').includes(op.client.clientSecret), 'the client secret is not logged');
  });

  it('denied at the provider: exit 5 and says so', async () => {
    const h = await home();
    const cli = spawnCli(['login', '--sso', '--provider', 'op'], { home: h });
    const complete = await cli.waitFor(/Or open: (\S+)/, 15_000);
    await op.approveDevice(new TestBrowser([op.ca]), complete, 'bob', { deny: true });
    assert.equal(await cli.exited(20_000), EXIT.AUTH, cli.stderr());
    assert.match(cli.stderr(), /the sign-in was refused/);
  });

  it('never approved: the code expires, exit 5 and says so', async () => {
    const h = await home();
    const cli = spawnCli(['login', '--sso', '--provider', 'op'], { home: h });
    await cli.waitFor(/Waiting for approval/, 15_000);
    assert.equal(await cli.exited((DEVICE_TTL_S + 15) * 1000), EXIT.AUTH, cli.stderr());
    assert.match(cli.stderr(), /expired before it was approved/);
  });

  it('the server refuses a poll sooner than the interval with SLOW_DOWN', async () => {
    const start = await api.request('POST', '/v1/auth/flows/op/device');
    assert.equal(start.status, 200, start.text);
    const { device_id: deviceId } = start.json as { device_id: string };
    const first = await api.request('POST', '/v1/auth/flows/op/device/poll', { body: { device_id: deviceId } });
    assert.equal(errorCode(first), 'AUTHORIZATION_PENDING');
    const second = await api.request('POST', '/v1/auth/flows/op/device/poll', { body: { device_id: deviceId } });
    assert.equal(errorCode(second), 'SLOW_DOWN');
  });
});

describe('second factor on every login path', () => {
  const ERIN = { username: 'erin', password: 'Erin-Local-Password-1' };
  let secret: string;

  before(async () => {
    await api.createUser(ERIN.username, ERIN.password);
    secret = await enrolTotp((await api.login(ERIN.username, ERIN.password)).access_token);
  });

  it('password login: a wrong --code is exit 5; the right one (--code, or stdin\'s next line) logs in', async () => {
    const h = await home();
    const wrong = await runCli(['login', '--code', '000000'], { home: h, stdin: `${ERIN.username}\n${ERIN.password}\n` });
    assert.equal(wrong.code, EXIT.AUTH, explain(wrong));
    assert.match(wrong.stderr, /wrong totp code/);
    const ok = await runCli(['login'], { home: h, stdin: `${ERIN.username}\n${ERIN.password}\n${await nextCode(secret)}\n` });
    assert.equal(ok.code, 0, explain(ok));
    assert.match(ok.stderr, /Logged in as erin\./);
    assert.equal((await runCli(['list'], { home: h })).code, 0);
  });

  it('SSO login of an enrolled user asks for the code too (--code)', async () => {
    const h = await home();
    const first = spawnCli(['login', '--sso', '--provider', 'op'], { home: h });
    await op.approveDevice(new TestBrowser([op.ca]), await first.waitFor(/Or open: (\S+)/, 15_000), 'bob');
    assert.equal(await first.exited(20_000), 0, first.stderr());
    const tokens = JSON.parse(readFileSync(join(h, '.config', 'hackstream', 'tokens.json'), 'utf8')) as { accessToken: string };
    const bobSecret = await enrolTotp(tokens.accessToken);
    const cli = spawnCli(['login', '--sso', '--provider', 'op', '--code', await nextCode(bobSecret)], { home: h });
    await op.approveDevice(new TestBrowser([op.ca]), await cli.waitFor(/Or open: (\S+)/, 15_000), 'bob');
    assert.equal(await cli.exited(20_000), 0, cli.stderr());
    assert.match(cli.stderr(), /Logged in as bob\./);
  });
});
