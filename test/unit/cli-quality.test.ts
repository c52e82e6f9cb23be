import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { xpraArgs } from '../../client/attach.js';
import { QUALITY_PRESETS, qualityOptions, type Quality } from '../../client/quality.js';

/** The rows of docs/clients.md's `--quality` table: preset → the options in backticks. */
function documentedTable(): Map<string, string[]> {
  const doc = readFileSync(new URL('../../docs/clients.md', import.meta.url), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const m = /^\| `(low|auto|high)`[^|]*\| (.*) \|$/.exec(line);
    if (!m) continue;
    const opts = /`([^`]*)`/.exec(m[2] ?? '');
    rows.set(m[1] ?? '', opts ? (opts[1] ?? '').split(' ') : []);
  }
  return rows;
}

describe('cli --quality', () => {
  const cases: Array<{ desc: string; q: Quality; expect: (o: string[]) => void }> = [
    { desc: 'low is tuned for a Pi Zero: RGB first (JPEG allowed), no auto-refresh, low quality, middling speed, no OpenGL, no unused subsystems', q: 'low', expect: (o) => {
      // bench/pi-zero: lz4 RGB is cheaper than JPEG to decode on the simulated ARMv6 core; nothing
      // costlier (h264, vp8/9, webp, png) may be sent.
      assert.ok(o.includes('--encoding=rgb'));
      assert.ok(o.includes('--encodings=rgb,jpeg'));
      // The refresh re-sent every lossy area; a cap starved RGB's first frame (bench/pi-zero).
      assert.ok(o.includes('--auto-refresh-delay=0'));
      assert.ok(!o.some((x) => x.startsWith('--bandwidth-limit=')));
      assert.ok(o.includes('--opengl=no'));
      for (const off of ['--tray=no', '--notifications=no', '--webcam=no', '--printing=no']) assert.ok(o.includes(off), off);
      // Sound is the audio switch's (attach.ts audioOptions): disabled unless --audio, whatever the preset.
      const quality = Number(o.find((x) => x.startsWith('--quality='))?.split('=')[1]);
      assert.ok(quality >= 30 && quality <= 40, `quality ${quality}`);
      // bench/client: speed 90 / min-speed 70 sent over 10x the bytes of speed 30–50 while scrolling.
      const speed = Number(o.find((x) => x.startsWith('--speed='))?.split('=')[1]);
      assert.ok(speed >= 30 && speed <= 60, `speed ${speed}`);
      assert.ok(o.some((x) => x.startsWith('--min-quality=')));
    } },
    { desc: 'auto leaves xpra its defaults', q: 'auto', expect: (o) => assert.deepEqual(o, []) },
    { desc: 'high asks for quality 90', q: 'high', expect: (o) => assert.ok(o.includes('--quality=90')) },
  ];
  for (const c of cases) it(c.desc, () => c.expect(qualityOptions(c.q)));

  it('docs/clients.md shows exactly the table in the code', () => {
    const doc = documentedTable();
    assert.deepEqual([...doc.keys()].sort(), Object.keys(QUALITY_PRESETS).sort());
    for (const [q, opts] of Object.entries(QUALITY_PRESETS)) assert.deepEqual(doc.get(q), [...opts], q);
  });

  it('every option is one xpra 3.1 attach accepts (names from `xpra attach --help`)', () => {
    const known = new Set([
      '--encoding', '--encodings', '--quality', '--min-quality', '--speed', '--min-speed', '--bandwidth-limit', '--opengl', '--auto-refresh-delay',
      '--tray', '--system-tray', '--notifications', '--speaker', '--microphone', '--webcam', '--printing', '--xsettings', '--bell', '--av-sync',
    ]);
    for (const opts of Object.values(QUALITY_PRESETS)) for (const o of opts) assert.ok(known.has(o.split('=')[0] ?? ''), o);
  });

  it('the xpra command line carries the SNI, CA and token file but never the token', () => {
    const c = { host: 'hackstream.test', port: 8443, sni: 'abc.sessions.test', token: 'hst_secret-token', ca_cert: 'PEM' };
    const args = xpraArgs(c, '127.0.0.1', { ca: '/tmp/d/ca.pem', token: '/tmp/d/token' }, 'low');
    assert.deepEqual(args.slice(0, 5), ['attach', 'ssl://127.0.0.1:8443/', '--ssl-ca-certs=/tmp/d/ca.pem', '--ssl-server-hostname=abc.sessions.test', '--password-file=/tmp/d/token']);
    assert.ok(!args.join(' ').includes(c.token));
    assert.deepEqual(args.slice(5, 5 + qualityOptions('low').length), qualityOptions('low'));
  });
});
