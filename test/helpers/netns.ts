import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A client machine of its own: a network namespace joined to the host by a veth pair (a /30:
 * the host end `hostIp`, the client end `clientIp`), so the client reaches the server only
 * through that link, which a test can take down as a Wi-Fi drop would.
 */
export interface ClientNetwork {
  readonly name: string;
  readonly hostIp: string;
  readonly clientIp: string;
  /** The client's link goes down and every TCP socket in the namespace is destroyed (`ss -K`). */
  down(): Promise<number>;
  up(): Promise<void>;
  /** Runs a command inside the namespace. */
  exec(cmd: string, args: string[]): Promise<string>;
  remove(): Promise<void>;
}

async function ip(args: string[]): Promise<string> {
  return (await run('ip', args)).stdout;
}

export async function clientNetwork(): Promise<ClientNetwork> {
  const tag = randomBytes(3).toString('hex');
  const name = `hs-net-${tag}`;
  const [hostIf, clientIf] = [`hsn${tag}h`, `hsn${tag}c`];
  const used = await ip(['-4', '-o', 'addr']);
  let third = 1 + (randomBytes(1)[0] ?? 0) % 250;
  while (used.includes(`10.213.${third}.`)) third = (third % 250) + 1;
  const [hostIp, clientIp] = [`10.213.${third}.1`, `10.213.${third}.2`];
  const inNs = (args: string[]) => ip(['netns', 'exec', name, ...args]);
  await ip(['netns', 'add', name]);
  try {
    await ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', clientIf]);
    await ip(['link', 'set', clientIf, 'netns', name]);
    await ip(['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    await ip(['link', 'set', hostIf, 'up']);
    await ip(['netns', 'exec', name, 'ip', 'addr', 'add', `${clientIp}/30`, 'dev', clientIf]);
    await ip(['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    await ip(['netns', 'exec', name, 'ip', 'link', 'set', clientIf, 'up']);
  } catch (err) {
    await ip(['link', 'del', hostIf]).catch(() => '');
    await ip(['netns', 'del', name]).catch(() => '');
    throw err;
  }
  return {
    name,
    hostIp,
    clientIp,
    async down() {
      await ip(['netns', 'exec', name, 'ip', 'link', 'set', clientIf, 'down']);
      const { stdout } = await run('ip', ['netns', 'exec', name, 'ss', '-K', '-tnH']);
      return stdout.split('\n').filter((l) => l.trim()).length;
    },
    async up() {
      await ip(['netns', 'exec', name, 'ip', 'link', 'set', clientIf, 'up']);
    },
    exec: (cmd, args) => inNs([cmd, ...args]),
    async remove() {
      await ip(['link', 'del', hostIf]).catch(() => '');
      await ip(['netns', 'del', name]).catch(() => '');
    },
  };
}
