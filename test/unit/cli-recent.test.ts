import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRecent, normaliseUrl, pushRecent, RECENT_MAX, rememberUrl } from '../../client/recent.js';
import { scratchDirs } from '../helpers/tmp.js';

const scratch = scratchDirs('hs-recent-unit-');

describe('launcher: what the user typed as a URL', () => {
  const cases = [
    { desc: 'a full URL is normalised like the server stores it', input: ' https://Example.org ', expect: 'https://example.org/' },
    { desc: 'no scheme: https is assumed', input: 'example.org/a?b=1', expect: 'https://example.org/a?b=1' },
    { desc: 'host:port without a scheme is a host, not a scheme', input: 'localhost:8080/x', expect: 'https://localhost:8080/x' },
    { desc: 'http stays http', input: 'http://intranet.local/', expect: 'http://intranet.local/' },
    { desc: 'other schemes are refused', input: 'file:///etc/passwd', expect: undefined },
    { desc: 'javascript: is refused', input: 'javascript:alert(1)', expect: undefined },
    { desc: 'spaces inside are refused', input: 'exa mple.org', expect: undefined },
    { desc: 'empty is no URL', input: '   ', expect: undefined },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(normaliseUrl(c.input), c.expect));
});

describe('launcher: recent URLs', () => {
  const cases = [
    { desc: 'newest first', list: ['b', 'a'], url: 'c', expect: ['c', 'b', 'a'] },
    { desc: 'a URL used again moves to the front, once', list: ['c', 'b', 'a'], url: 'a', expect: ['a', 'c', 'b'] },
    { desc: 'the same URL again changes nothing', list: ['a', 'b'], url: 'a', expect: ['a', 'b'] },
    { desc: `at most ${RECENT_MAX}: the oldest goes`, list: Array.from({ length: RECENT_MAX }, (_, i) => `u${i}`), url: 'new', expect: ['new', ...Array.from({ length: RECENT_MAX - 1 }, (_, i) => `u${i}`)] },
  ];
  for (const c of cases) it(c.desc, () => assert.deepEqual(pushRecent(c.list, c.url), c.expect));

  it('are stored 0600 in the config folder and read back; a broken file is an empty list', () => {
    const dir = scratch();
    const saved = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = dir;
    try {
      assert.deepEqual(loadRecent(), []);
      rememberUrl('https://a.example/');
      assert.deepEqual(rememberUrl('https://b.example/'), ['https://b.example/', 'https://a.example/']);
      const file = join(dir, 'hackstream', 'recent.json');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'hackstream')).mode & 0o777, 0o700);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { urls: ['https://b.example/', 'https://a.example/'] });
      assert.deepEqual(loadRecent(), ['https://b.example/', 'https://a.example/']);
      writeFileSync(file, '{not json');
      assert.deepEqual(loadRecent(), []);
      writeFileSync(file, JSON.stringify({ urls: 'nope' }));
      assert.deepEqual(loadRecent(), []);
    } finally {
      if (saved === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = saved;
    }
  });
});
