import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApi, type TestApi } from '../helpers/api.js';
import { startXvfb, until, type Display } from '../helpers/display.js';
import { hostAddress } from '../helpers/e2e.js';
import { cleanupSessions, containersOf, docker, launch, target, testSessions, waitForSession } from '../helpers/sessions.js';
import { xpraAttach } from '../helpers/xpra-attach.js';
import { LABELS } from '../../core/sessions/runtime.js';

/*
 * Downloads with the real components: a page served by the test sends Firefox (in a real
 * session, Docker + xpra) to a file download. With downloads and file transfer allowed, the
 * file reaches the attached real xpra client's download directory byte for byte (sha256);
 * with downloads forbidden, Firefox's download fails in the session, nothing is saved there
 * and nothing is sent.
 */

const FILE = randomBytes(300 * 1024);
const SHA = createHash('sha256').update(FILE).digest('hex');
/** Over the 1 MB cap of the third case. */
const BIG = randomBytes(1536 * 1024);
/** What /report.bin serves (each case sets it). */
let served = FILE;
const hostIp = hostAddress();
const USER = { username: 'downloads-user', password: 'Downloads-User-Password-42' };

let display: Display | undefined;
let page: { url: string; fileHits: () => number; close(): Promise<void> };
const dirs: string[] = [];

/** `/` sends the browser to `/report.bin`, an attachment (so Firefox downloads it). */
async function servePage(): Promise<typeof page> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/report.bin') {
      hits++;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment; filename="report.bin"', 'content-length': served.length });
      res.end(served);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end('<!doctype html><title>Download</title><p>Your file is on its way.</p><script>setTimeout(() => { location.href = "/report.bin"; }, 500);</script>');
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, hostIp, resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://${hostIp}:${port}/`,
    fileHits: () => hits,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The titles of the session's windows, as its xpra server lists them (Firefox's is its tab's title). */
const WINDOW_TITLES = 'PATH=/usr/bin:/bin xpra info --socket-dirs=/tmp/hs/xpra :100 2>/dev/null | grep -E "^windows\\.[0-9]+\\.title=" || true';

/** Runs a command in the session's container as its user; its exit code and output. */
async function execIn(instanceId: string, sessionId: string, cmd: string[]): Promise<{ code: number | null; out: string }> {
  const c = (await containersOf(instanceId)).find((x) => x.Labels[LABELS.session] === sessionId);
  assert.ok(c, 'the session has a container');
  const exec = await docker.getContainer(c.Id).exec({ Cmd: cmd, User: '1000:1000', AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  let out = '';
  await new Promise<void>((resolve) => {
    stream.on('data', (b: Buffer) => (out += b.toString()));
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', () => resolve());
  });
  return { code: (await exec.inspect()).ExitCode, out };
}

before(async () => {
  display = await startXvfb();
  page = await servePage();
});

after(async () => {
  await page?.close();
  display?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const CASES = [
  { name: 'the policy on', policy: { fileTransfer: true, downloads: true }, file: FILE, expect: 'arrives' },
  { name: 'the policy off', policy: { fileTransfer: true, downloads: false }, file: FILE, expect: 'blocked' },
  { name: 'a file over the cap', policy: { fileTransfer: true, downloads: true, downloadMaxMb: 1 }, file: BIG, expect: 'too-large' },
] as const;

for (const c of CASES) {
  const allowed = c.expect !== 'blocked';
  describe(`downloads with ${c.name}`, () => {
    const base = testSessions();
    const sessions = { ...base, network: { ...base.network, allow: [`${hostIp}/32`] }, policy: c.policy };
    let api: TestApi;
    before(async () => {
      api = await startApi({ db: 'postgres', kv: 'redis', config: { sessions } });
      await api.createUser(USER.username, USER.password);
    });
    after(async () => {
      await api?.close();
      await cleanupSessions(sessions);
    });

    const title = {
      arrives: 'the downloaded file arrives on the client byte for byte',
      blocked: "Firefox's download is refused with HackStream's notice, nothing is kept and nothing arrives",
      'too-large': 'the download stays in the session with a note why, the user is told, and nothing arrives',
    }[c.expect];
    it(title, { timeout: 240_000 }, async () => {
      served = c.file;
      const saveTo = mkdtempSync(join(tmpdir(), 'hs-downloads-client-'));
      dirs.push(saveTo);
      const token = (await api.login(USER.username, USER.password)).access_token;
      const s = await launch(api, token, { app: 'firefox', url: page.url });
      const client = xpraAttach(target(api, s.connect), display!.name, { extra: ['--file-transfer=yes', '--open-files=no'], env: { XPRA_DOWNLOAD_DIR: saveTo } });
      /** Waits for Firefox's window to show HackStream's notice tab, titled `title`. */
      const noticeShown = (sessionId: string, title: string) =>
        until(
          async () => ((await execIn(sessions.instanceId, sessionId, ['/bin/bash', '-c', WINDOW_TITLES])).out.includes(title) ? true : undefined),
          60_000,
          `no window titled "${title}"`,
        );
      try {
        await waitForSession(api, token, s.session_id, (v) => { assert.ok(!client.exited(), `the client exited: ${client.output()}`); return v.state === 'connected'; }, 90_000).catch((err: Error) => {
          throw new Error(`${err.message}; the client said: ${client.output()}`);
        });
        if (c.expect === 'too-large') {
          const note = await until(
            async () => {
              const r = await execIn(sessions.instanceId, s.session_id, ['/bin/bash', '-c', 'cat /tmp/hs/home/Web-Downloads/report.bin.not-sent.txt 2>/dev/null || true']);
              return r.out.trim() || undefined;
            },
            120_000,
            'no note that the file was not sent',
          );
          assert.match(note, /report\.bin is \d+ bytes, over the 1 MB download limit: not sent to the client/);
          await noticeShown(s.session_id, 'Download not sent — HackStream');
          assert.deepEqual(readdirSync(saveTo), [], 'nothing arrived on the client');
        } else if (allowed) {
          const got = await until(
            async () => {
              const f = join(saveTo, 'report.bin');
              if (!existsSync(f)) return undefined;
              const data = readFileSync(f);
              return data.length === FILE.length ? data : undefined;
            },
            120_000,
            `report.bin did not arrive in ${saveTo} (found ${readdirSync(saveTo).join(', ') || 'nothing'}); the client said: ${client.output()}`,
          );
          assert.equal(createHash('sha256').update(got).digest('hex'), SHA, 'the same bytes');
        } else {
          // Firefox fetched it (the page led it there); the download is removed and the user told.
          await until(async () => (page.fileHits() > 0 ? true : undefined), 120_000, 'Firefox never asked for the file');
          await noticeShown(s.session_id, 'Download not allowed — HackStream');
          await until(
            async () => {
              const r = await execIn(sessions.instanceId, s.session_id, ['/bin/bash', '-c', 'find /tmp/hs/home -name "report.bin*" | head -5']);
              return r.code === 0 && r.out.trim() === '' ? true : undefined;
            },
            60_000,
            'a copy of the download stayed in the session',
          );
          const sender = await execIn(sessions.instanceId, s.session_id, ['/bin/bash', '-c', 'pgrep -f "^python3 /usr/local/lib/hackstream/hs-downloads.py$" || true']);
          assert.equal(sender.out.trim(), '', 'no download sender runs when downloads are forbidden');
          assert.deepEqual(readdirSync(saveTo), [], 'nothing arrived on the client');
        }
      } finally {
        client.close();
      }
    });
  });
}
