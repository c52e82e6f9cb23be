import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execInContainer } from '../../agent/docker-engine.js';
import { LABELS } from '../../core/sessions/runtime.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { hostAddress } from '../helpers/e2e.js';
import { waitFor } from '../helpers/net.js';
import { unmountProfiles } from '../helpers/profiles.js';
import { cleanupSessions, containersOf, docker, launch, testSessions, waitForSession } from '../helpers/sessions.js';

/*
 * The real Firefox keeps a login across sessions on a persistent profile: session 1 opens a
 * test site's login page, which sets a long-lived cookie; session 2 (after a stop, a new
 * container) opens the site again and Firefox sends the cookie. Proven by what the site
 * receives, not by reading files. (No xpra client here: the browser's own requests are the proof.)
 */

describe('a persistent profile keeps a site login (cookie) across sessions (real Firefox)', () => {
  const hostIp = hostAddress();
  const base = testSessions({ readyTimeoutMs: 120_000 });
  // The container may reach the host only at the site's address.
  const sessions = { ...base, network: { ...base.network, allow: [`${hostIp}/32`] } };
  const secret = randomBytes(12).toString('hex');
  const seen: Array<{ path: string; cookie: string }> = [];
  let site: http.Server;
  let siteUrl: string;
  let api: TestApi;
  let alice: string;

  before(async () => {
    site = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', cookie: req.headers.cookie ?? '' });
      if (req.url === '/login') {
        res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': `hs_login=${secret}; Max-Age=86400; Path=/; SameSite=Lax`, 'cache-control': 'no-store' });
        res.end('<title>logged in</title><h1>logged in</h1>');
      } else {
        res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' });
        res.end('<title>account</title><h1>account</h1>');
      }
    });
    await new Promise<void>((resolve) => site.listen(0, hostIp, resolve));
    siteUrl = `http://${hostIp}:${(site.address() as { port: number }).port}`;
    api = await startApi({
      db: 'postgres',
      kv: 'redis',
      config: { sessions, plugins: { 'auth-local': {}, 'quota-default': { user: { profileMb: 64, memoryMb: 1024 } } } },
    });
    await api.createUser('alice', 'alice password 1');
    alice = (await api.login('alice', 'alice password 1')).access_token;
  });

  after(async () => {
    await cleanupSessions(sessions);
    if (api) await unmountProfiles(api.dataDir);
    await api?.close();
    site?.close();
  });

  it('session 1 logs in (the site sets a cookie); session 2 sends it back', async () => {
    const first = await launch(api, alice, { app: 'firefox', profile: 'persist', url: `${siteUrl}/login` });
    assert.ok(await waitFor(() => seen.some((h) => h.path === '/login'), 60_000), 'Firefox opened the login page');
    const c = (await containersOf(sessions.instanceId)).find((x) => x.Labels[LABELS.session] === first.session_id);
    assert.ok(c);
    // Firefox writes cookies to its profile's database shortly after it gets them.
    assert.ok(
      await waitFor(async () => (await execInContainer(docker, c.Id, ['sh', '-c', `grep -l -a ${secret} /tmp/hs/profile/cookies.sqlite*`], { user: '1000:1000' })).exitCode === 0, 60_000, 500),
      'the cookie reached cookies.sqlite on the volume',
    );
    await api.request('POST', `/v1/sessions/${first.session_id}/stop`, { token: alice });
    await waitForSession(api, alice, first.session_id, (s) => s.state === 'stopped', 60_000);

    const second = await launch(api, alice, { app: 'firefox', profile: 'persist', url: `${siteUrl}/account` });
    assert.ok(await waitFor(() => seen.some((h) => h.path === '/account'), 60_000), 'Firefox opened the account page');
    const hit = seen.find((h) => h.path === '/account');
    assert.equal(hit?.cookie, `hs_login=${secret}`, 'the new session sent the login cookie from the persistent profile');
    await api.request('POST', `/v1/sessions/${second.session_id}/stop`, { token: alice });
  });
});
