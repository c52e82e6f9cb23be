import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { escapeText, formArgs, listArgs, parseForm, questionArgs } from '../../client/dialogs.js';
import { failureMessage } from '../../client/gui-launch.js';

describe('launcher dialogs (yad arguments)', () => {
  it('a form: fields, buttons, then the values after --; the hidden field starts empty', () => {
    const args = formArgs({
      title: 'T',
      text: 'Sign in',
      fields: [{ label: 'Server URL', value: 'https://h' }, { label: 'Username', value: '-dash' }, { label: 'Password', type: 'H' }, { label: 'URL', type: 'CBE', items: ['https://a/', 'https://b/'] }],
      buttons: [{ label: '_Sign in', code: 0 }, { label: '_Quit', code: 1 }],
    });
    assert.ok(args.includes('--form') && args.includes('--title=T') && args.includes('--text=Sign in'));
    assert.ok(args.includes('--field=Password:H') && args.includes('--field=URL:CBE') && args.includes('--field=Server URL'));
    assert.deepEqual(args.filter((a) => a.startsWith('--button=')), ['--button=_Sign in:0', '--button=_Quit:1']);
    const values = args.slice(args.indexOf('--') + 1);
    assert.deepEqual(values, ['https://h', '-dash', '', 'https://a/\x1fhttps://b/']);
  });

  it('a colon in a label cannot change the field type', () => {
    const args = formArgs({ title: 'T', fields: [{ label: 'Secret:H' }], buttons: [] });
    assert.ok(args.includes('--field=Secret H'));
  });

  const textCases = [
    { desc: 'markup is shown literally', input: '<b>x</b> & y', expect: '&lt;b&gt;x&lt;/b&gt; &amp; y' },
    { desc: 'backslashes survive yad\'s escape expansion', input: 'C:\\new', expect: 'C:\\\\new' },
    { desc: 'newlines stay newlines', input: 'a\nb', expect: 'a\nb' },
  ];
  for (const c of textCases) it(c.desc, () => assert.equal(escapeText(c.input), c.expect));

  it('parses the values yad prints, keeping separators typed inside them', () => {
    assert.deepEqual(parseForm('https://h\x1ealice\x1epa|ss\x1e\n', 3), ['https://h', 'alice', 'pa|ss']);
    assert.deepEqual(parseForm('', 2), ['', '']);
  });

  it('a question: the text escaped, No before Yes', () => {
    assert.deepEqual(questionArgs('Q', 'a<b', '_Trust', '_Cancel').slice(-3), ['--text=a&lt;b', '--button=_Cancel:1', '--button=_Trust:0']);
  });
});

describe('launcher: the session list (yad --list)', () => {
  it('columns, the first one printed, then the cells row by row after --; markup in a cell is escaped', () => {
    const args = listArgs({
      title: 'T',
      columns: ['Session', 'URL'],
      rows: [['id-1', 'https://x.example/?a=<b>bold</b>&c=1'], ['id-2', '-rf']],
      buttons: [{ label: '_Resume', code: 0 }],
    });
    assert.ok(args.includes('--print-column=1') && args.includes('--column=Session') && args.includes('--button=_Resume:0'));
    assert.deepEqual(args.slice(args.indexOf('--') + 1), ['id-1', 'https://x.example/?a=&lt;b&gt;bold&lt;/b&gt;&amp;c=1', 'id-2', '-rf']);
  });
});

describe('launcher: why a launch failed', () => {
  const cases = [
    { desc: 'the CLI\'s own last message', out: 'Starting a browser session…\nhackstream: quota reached: at most 1. Stop a session first\n', code: 6, expect: 'quota reached: at most 1. Stop a session first' },
    { desc: 'else the last line', out: 'something odd\n', code: 1, expect: 'something odd' },
    { desc: 'else the exit code', out: '', code: 7, expect: 'the browser ended with exit code 7' },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(failureMessage(c.out, c.code), c.expect));
});
