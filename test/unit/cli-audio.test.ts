import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { audioOptions, xpraArgs } from '../../client/attach.js';
import { qualityOptions } from '../../client/quality.js';

describe('cli --audio (the xpra client options for sound)', () => {
  const c = { host: 'hackstream.test', port: 8443, sni: 'abc.sessions.test', token: 'hst_secret-token', ca_cert: 'PEM' };
  const files = { ca: '/tmp/d/ca.pem', token: '/tmp/d/token' };
  const cases: { desc: string; audio: boolean | undefined; expect: string[] }[] = [
    { desc: 'without --audio the sound subsystem is not loaded at all (speaker and microphone no)', audio: undefined, expect: ['--speaker=no', '--microphone=no'] },
    { desc: '--audio: the speaker on, as Opus in Ogg; never the microphone', audio: true, expect: ['--speaker=on', '--speaker-codec=opus+ogg', '--microphone=disabled'] },
  ];
  for (const t of cases) {
    it(t.desc, () => {
      const args = t.audio === undefined ? xpraArgs(c, '127.0.0.1', files, 'low') : xpraArgs(c, '127.0.0.1', files, 'low', t.audio);
      assert.deepEqual(args.slice(5 + qualityOptions('low').length), t.expect);
      assert.deepEqual(audioOptions(t.audio ?? false), t.expect);
    });
  }

  it('every option is one xpra 3.1 attach accepts (names from `xpra attach --help`)', () => {
    const known = new Set(['--speaker', '--speaker-codec', '--microphone']);
    for (const o of [...audioOptions(true), ...audioOptions(false)]) assert.ok(known.has(o.split('=')[0] ?? ''), o);
  });
});
