import assert from 'node:assert/strict';
import { lstatSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { initialAdminAnnouncer } from '../../server/initial-admin.js';
import { scratchDirs } from '../helpers/tmp.js';

const scratch = scratchDirs('hs-initial-admin-');
const FIRST = { username: 'admin', password: 'Generated-Password-0123456789' };

function capture(): { write: (t: string) => void; text: () => string } {
  let out = '';
  return { write: (t) => (out += t), text: () => out };
}

describe('the first admin\'s generated password (server/initial-admin.ts)', () => {
  it('without HACKSTREAM_ADMIN_PASSWORD_FILE: the notice goes to stderr once (npm start at a terminal)', () => {
    const err = capture();
    initialAdminAnnouncer({}, err.write)(`notice with ${FIRST.password}`, FIRST);
    assert.equal(err.text(), `notice with ${FIRST.password}`);
  });

  it('with it: written to that file (0600), and stderr (the journal) names the file, not the password', () => {
    const file = join(scratch(), 'initial-admin-password');
    const err = capture();
    initialAdminAnnouncer({ HACKSTREAM_ADMIN_PASSWORD_FILE: file }, err.write)(`notice with ${FIRST.password}`, FIRST);
    assert.equal(readFileSync(file, 'utf8'), `${FIRST.password}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(err.text(), new RegExp(`administrator "admin" was created; its generated password is in ${file} \\(mode 0600\\)`));
    assert.ok(!err.text().includes(FIRST.password));
  });

  it('never overwrites or follows what is already there, and then says how to set a password instead', () => {
    const dir = scratch();
    const old = join(dir, 'initial-admin-password');
    writeFileSync(old, 'an older password\n', { mode: 0o600 });
    const target = join(dir, 'elsewhere');
    const link = join(dir, 'planted');
    symlinkSync(target, link);
    for (const file of [old, link]) {
      const err = capture();
      initialAdminAnnouncer({ HACKSTREAM_ADMIN_PASSWORD_FILE: file }, err.write)('notice', FIRST);
      assert.match(err.text(), /could not be written to .* \(EEXIST\); set one with: hackstream-admin reset-password admin/);
      assert.ok(!err.text().includes(FIRST.password));
    }
    assert.equal(readFileSync(old, 'utf8'), 'an older password\n');
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.throws(() => statSync(target), 'nothing written through the link');
  });

  it('refuses a relative path (the service\'s working directory is not the operator\'s)', () => {
    assert.throws(() => initialAdminAnnouncer({ HACKSTREAM_ADMIN_PASSWORD_FILE: 'state/pw' }, () => {}), /HACKSTREAM_ADMIN_PASSWORD_FILE must be an absolute path/);
  });
});
