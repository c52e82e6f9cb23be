import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { isAbsolute } from 'node:path';

/*
 * Where the first admin's generated password goes. From a checkout (npm start) it is shown
 * once on the terminal (stderr), never in the JSON log. A service (the .deb's systemd unit)
 * sets HACKSTREAM_ADMIN_PASSWORD_FILE: stderr is the journal there, which keeps what it is
 * given for weeks and shows it to the adm group, so the password goes to that file instead
 * (0600, the control user's), and the journal only says where it is.
 */

export type Announce = (text: string, first: { username: string; password: string }) => void;

export function initialAdminAnnouncer(env: NodeJS.ProcessEnv, stderr: (text: string) => void): Announce {
  const file = env.HACKSTREAM_ADMIN_PASSWORD_FILE;
  if (!file) return (text) => stderr(text);
  if (!isAbsolute(file)) throw new Error(`HACKSTREAM_ADMIN_PASSWORD_FILE must be an absolute path (got "${file}")`);
  return (_text, first) => {
    try {
      // wx: never follows or overwrites what is there (a link planted in its place, an old password).
      const fd = openSync(file, 'wx', 0o600);
      try {
        writeSync(fd, `${first.password}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      // The account exists; its password is not worth a crash loop, nor a line in the journal.
      stderr(
        `HackStream: an administrator "${first.username}" was created but its generated password could not be written to ${file} ` +
          `(${(err as NodeJS.ErrnoException).code ?? 'error'}); set one with: hackstream-admin reset-password ${first.username}\n`,
      );
      return;
    }
    stderr(
      `HackStream: no accounts existed, so an administrator "${first.username}" was created; its generated password is in ${file} (mode 0600). ` +
        `Log in, set your own password (hackstream-admin reset-password ${first.username}) and delete the file.\n`,
    );
  };
}
