#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { adminUsers, QUOTA_FLAGS } from './admin.js';
import { ApiClient, type SessionRow } from './api.js';
import { attach, HANDOFF_EXIT, HandOff, resume } from './attach.js';
import { clearTokens, loadConfig, requireConfig, saveConfig } from './config.js';
import { configure } from './configure.js';
import { CliError, EXIT } from './errors.js';
import { gui } from './gui.js';
import { askCredentials, askHidden, askLine } from './prompt.js';
import { isQuality, QUALITIES, type Quality } from './quality.js';
import { ssoLogin } from './sso.js';

const HELP: Record<string, string> = {
  '': `hackstream — run Firefox on a HackStream server and show it here with xpra

usage: hackstream <command> [options]

  configure --api-url URL [--ca-fingerprint SHA256] [--yes]   pin the server (first contact)
  config set api_url URL                                        same as configure
  login [--username U] [--code C]                               log in (password hidden; second factor asked when needed)
  login --sso [--provider ID] [--code C]                        log in through the server's SSO (device code)
  logout
  launch browser [--url U] [--profile ephemeral] [--quality low|auto|high] [--audio] [--no-attach]
  attach <id> [--quality low|auto|high] [--audio]
  list [--json] [--all]
  stop <id>
  admin users create|disable|enable|role|quota|list …
  gui [--address IP]                                            the desktop launcher (yad windows)

  --help (also after a command), --version
Exit codes: docs/clients.md.`,
  configure: `usage: hackstream configure --api-url https://host[:port] [--ca-fingerprint SHA256] [--yes] [--address IP]
Reads the certificate the server presents, shows its SHA-256 and pins it once you agree
(--yes, or a matching --ca-fingerprint, for scripts). A certificate this system's CA store
vouches for (Let's Encrypt, a company CA) is trusted through that store, nothing pinned.
--address dials that IP instead of resolving the host.`,
  config: 'usage: hackstream config set api_url URL [--yes|--ca-fingerprint SHA256]\n       hackstream config show',
  login: `usage: hackstream login [--username U] [--code C]
       hackstream login --sso [--provider ID] [--code C]
Prompts for the username and the password (hidden); with stdin not a terminal, reads them as two lines.
--sso signs in through the server's single sign-on (OpenID Connect): it shows a code and a URL to
open in any browser, and finishes once you approved there. --provider picks the provider when the
server offers several (they are listed otherwise).
When the server asks for a second factor (a TOTP code), it is prompted for, or read from --code,
or read as the next line of stdin.`,
  logout: 'usage: hackstream logout\nRevokes this login on the server and deletes the local tokens.',
  launch: `usage: hackstream launch browser [--url U] [--profile ephemeral|persist] [--quality ${QUALITIES.join('|')}] [--audio] [--no-attach]
Starts a session and attaches with xpra, re-attaching by itself when the connection drops;
while the server is unreachable (Wi-Fi gone) it prints "reconnecting…" and keeps trying for
6 min (HACKSTREAM_RECONNECT_GIVE_UP=<seconds> to change; attach does the same).
--no-attach prints the session id and returns.`,
  attach: `usage: hackstream attach <id> [--quality ${QUALITIES.join('|')}] [--audio]`,
  list: 'usage: hackstream list [--json] [--all]\n--all: every user\'s sessions (admins); ended ones are not shown.',
  stop: 'usage: hackstream stop <id>',
  gui: `usage: hackstream gui [--address IP]
The desktop launcher: signs in the first time (server URL, its certificate to trust, username,
password), then a window with a URL field, the recent URLs and Launch Browser. Needs yad.
--address dials that IP instead of resolving the server's host (as configure --address).`,
  admin: `usage: hackstream admin users create <username> [--role user|admin]   (password prompted, or stdin)
       hackstream admin users disable|enable <username>
       hackstream admin users role <username> user|admin
       hackstream admin users quota <username> ${Object.keys(QUOTA_FLAGS).map((f) => `[--${f} N|default]`).join(' ')}
       hackstream admin users list`,
};

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  'api-url': { type: 'string' },
  'ca-fingerprint': { type: 'string' },
  address: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  username: { type: 'string' },
  url: { type: 'string' },
  profile: { type: 'string' },
  quality: { type: 'string' },
  'no-attach': { type: 'boolean' },
  audio: { type: 'boolean' },
  json: { type: 'boolean' },
  all: { type: 'boolean' },
  role: { type: 'string' },
  sso: { type: 'boolean' },
  provider: { type: 'string' },
  code: { type: 'string' },
  ...Object.fromEntries(Object.keys(QUOTA_FLAGS).map((f) => [f, { type: 'string' }])),
} as const;

const out = (s: string) => process.stdout.write(`${s}\n`);
const log = (s: string) => process.stderr.write(`${s}\n`);


/** Set by the bundler (scripts/package-deb.sh); from a checkout, package.json is read instead. */
declare const HACKSTREAM_VERSION: string | undefined;

function version(): string {
  if (typeof HACKSTREAM_VERSION === 'string') return `hackstream ${HACKSTREAM_VERSION}`;
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
  return `hackstream ${pkg.version ?? '0.0.0'}`;
}

function quality(v: string | undefined, fallback: Quality): Quality {
  if (v === undefined) return fallback;
  if (!isQuality(v)) throw new CliError(EXIT.USAGE, `--quality must be one of ${QUALITIES.join(', ')}`);
  return v;
}

function table(rows: SessionRow[]): string {
  const head = ['ID', 'STATE', 'APP', 'QUALITY', 'CREATED', 'URL'];
  const cells = rows.map((r) => [r.session_id, r.state, r.app, r.quality, r.created_at.replace(/\.\d+Z$/, 'Z'), r.url ?? '']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  return [head, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  const v = values as Record<string, string | boolean | undefined>;
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const [command = '', ...args] = positionals;
  if (v.version) return out(version()), EXIT.OK;
  if (v.help || command === '' || command === 'help') {
    const topic = command === 'help' ? (args[0] ?? '') : command;
    out(HELP[topic] ?? HELP['']!);
    return EXIT.OK;
  }
  const configureWith = async (apiUrl: string) =>
    configure({ apiUrl, yes: v.yes === true, log, ...(str('address') ? { address: str('address')! } : {}), ...(str('ca-fingerprint') ? { caFingerprint: str('ca-fingerprint')! } : {}) });
  const code = str('code');
  const secondFactor = {
    ask: (factor: string, retry: boolean) => (code !== undefined ? Promise.resolve(code) : askLine(`${retry ? 'Wrong code, try again. ' : ''}${factor} code: `, `${factor} code`)),
    canRetry: code === undefined && process.stdin.isTTY === true,
  };
  const api = () => new ApiClient(requireConfig(), () => askCredentials(), secondFactor);
  const dialHost = () => requireConfig().address;

  switch (command) {
    case 'configure': {
      const url = str('api-url') ?? args[0];
      if (!url) throw new CliError(EXIT.USAGE, HELP.configure!);
      await configureWith(url);
      return EXIT.OK;
    }
    case 'config': {
      if (args[0] === 'show') return out(JSON.stringify(loadConfig() ?? {}, null, 2)), EXIT.OK;
      if (args[0] !== 'set' || args[2] === undefined) throw new CliError(EXIT.USAGE, HELP.config!);
      if (args[1] === 'api_url') await configureWith(args[2]);
      else if (args[1] === 'address') saveConfig({ ...requireConfig(), address: args[2] });
      else throw new CliError(EXIT.USAGE, `unknown setting ${args[1]}; known: api_url, address`);
      return EXIT.OK;
    }
    case 'login': {
      const client = api();
      clearTokens();
      if (v.sso) {
        const who = await ssoLogin(client, { ...(str('provider') ? { provider: str('provider')! } : {}), log });
        log(`Logged in as ${who}.`);
        return EXIT.OK;
      }
      if (str('provider')) throw new CliError(EXIT.USAGE, '--provider goes with --sso');
      const { username, password } = await askCredentials(str('username'));
      await client.login(username, password);
      log(`Logged in as ${username}.`);
      return EXIT.OK;
    }
    case 'logout': {
      const had = await api().logout();
      log(had ? 'Logged out.' : 'Not logged in.');
      return EXIT.OK;
    }
    case 'launch': {
      if (args[0] !== 'browser') throw new CliError(EXIT.USAGE, HELP.launch!);
      const q = quality(str('quality'), 'low');
      const client = api();
      const body = { app: 'firefox', quality: q, ...(str('url') ? { url: str('url') } : {}), ...(str('profile') ? { profile: str('profile') } : {}) };
      log('Starting a browser session…');
      const s = await client.call<SessionRow & { connect: Parameters<typeof attach>[2]['first'] }>('POST', '/v1/sessions', body);
      if (v['no-attach']) {
        log(`Session ${s.session_id} is ${s.state}. Attach with: hackstream attach ${s.session_id}`);
        out(s.session_id);
        return EXIT.OK;
      }
      log(`Session ${s.session_id} is ${s.state}; attaching (quality ${q}).`);
      await attach(client, s.session_id, { quality: q, audio: v.audio === true, log, ...(s.connect ? { first: s.connect } : {}), ...(dialHost() ? { dialHost: dialHost()! } : {}) });
      return EXIT.OK;
    }
    case 'attach': {
      const id = args[0];
      if (!id) throw new CliError(EXIT.USAGE, HELP.attach!);
      const client = api();
      const session = await client.call<SessionRow>('GET', `/v1/sessions/${encodeURIComponent(id)}`).catch((err: unknown) => {
        if (err instanceof CliError && err.apiCode === 'NOT_FOUND') throw new CliError(EXIT.SESSION_GONE, `no session ${id} (see hackstream list)`);
        throw err;
      });
      const q = quality(str('quality'), isQuality(session.quality) ? session.quality : 'low');
      log(`Session ${session.session_id} is ${session.state}; attaching (quality ${q}).`);
      await attach(client, id, { quality: q, audio: v.audio === true, log, ...(dialHost() ? { dialHost: dialHost()! } : {}) });
      return EXIT.OK;
    }
    case '__resume': {
      // bin/hackstream's xpra exited with this code (see attach.ts, handOff).
      const code = Number(args[0]);
      if (!Number.isInteger(code)) throw new CliError(EXIT.USAGE, 'usage: hackstream __resume <xpra exit code> (run by bin/hackstream)');
      await resume(api(), code, log);
      return EXIT.OK;
    }
    case 'list': {
      const r = await api().call<{ items: SessionRow[] }>('GET', `/v1/sessions${v.all ? '?all=1' : ''}`);
      out(v.json ? JSON.stringify(r.items, null, 2) : r.items.length ? table(r.items) : 'No sessions.');
      return EXIT.OK;
    }
    case 'stop': {
      const id = args[0];
      if (!id) throw new CliError(EXIT.USAGE, HELP.stop!);
      const s = await api().call<SessionRow>('POST', `/v1/sessions/${encodeURIComponent(id)}/stop`);
      log(`Session ${s.session_id} is ${s.state}.`);
      return EXIT.OK;
    }
    case 'gui': {
      await gui({ log, ...(str('address') ? { address: str('address')! } : {}) });
      return EXIT.OK;
    }
    case 'admin': {
      if (args[0] !== 'users') throw new CliError(EXIT.USAGE, HELP.admin!);
      const strings = Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) as Record<string, string>;
      await adminUsers(api(), args.slice(1), strings, () => askHidden('New user\'s password: ', 'password'), out);
      return EXIT.OK;
    }
    default:
      throw new CliError(EXIT.USAGE, `unknown command ${command}\n\n${HELP['']!}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (err) {
    if (err instanceof HandOff) return HANDOFF_EXIT;
    if (err instanceof CliError) {
      log(`hackstream: ${err.message}`);
      return err.exitCode;
    }
    if (err instanceof Error && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      log(`hackstream: ${err.message} (see hackstream --help)`);
      return EXIT.USAGE;
    }
    log(`hackstream: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.FAILURE;
  }
}

process.exitCode = await main(process.argv.slice(2));
