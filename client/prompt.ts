import { createInterface } from 'node:readline';
import { CliError, EXIT } from './errors.js';

/**
 * Lines from stdin when it is not a TTY (scripts, tests): read once, handed out in order,
 * so `printf 'user\npass\n' | hackstream login` works.
 */
let piped: string[] | undefined;

async function pipedLine(what: string): Promise<string> {
  if (piped === undefined) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    piped = Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  }
  const line = piped.shift();
  if (line === undefined || line === '') throw new CliError(EXIT.AUTH, `no ${what} given on stdin`);
  return line;
}

export async function askLine(question: string, what: string): Promise<string> {
  if (!process.stdin.isTTY) return pipedLine(what);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
  }
}

/** No echo on a TTY: raw mode, characters collected by hand. */
export async function askHidden(question: string, what: string): Promise<string> {
  if (!process.stdin.isTTY) return pipedLine(what);
  process.stderr.write(question);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = '';
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            stdin.off('data', onData);
            process.stderr.write('\n');
            resolve(value);
            return;
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            process.stderr.write('\n');
            reject(new CliError(EXIT.FAILURE, 'cancelled'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}

export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const answer = await askLine(`${question} [y/N] `, 'answer');
  return /^y(es)?$/i.test(answer.trim());
}

export async function askCredentials(username?: string): Promise<{ username: string; password: string }> {
  const user = username ?? (await askLine('Username: ', 'username')).trim();
  const password = await askHidden('Password: ', 'password');
  return { username: user, password };
}
