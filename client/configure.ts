import { loadConfig, saveConfig, type CliConfig } from './config.js';
import { CliError, EXIT } from './errors.js';
import { connectPinned, formatFingerprint, trustProblem } from './http.js';
import { confirm } from './prompt.js';

export interface ConfigureOptions {
  apiUrl: string;
  address?: string;
  caFingerprint?: string;
  yes: boolean;
  log: (m: string) => void;
  /** Asks whether to pin (default: a y/N question on the terminal). */
  confirm?: (c: PresentedCertificate) => Promise<boolean>;
}

/** What the server presented at first contact. */
export interface PresentedCertificate {
  host: string;
  subject: string;
  issuer: string;
  fingerprint: string;
  /** The fingerprint pinned until now, when it differs. */
  replaces?: string;
}

/** The CN of an X509Certificate subject or issuer ("CN=…\nO=…"). */
function commonName(dn: string): string {
  return /^CN=(.*)$/m.exec(dn)?.[1] ?? dn.split('\n')[0] ?? '?';
}

/**
 * First contact. A server the system trust store vouches for (a certificate from a public or
 * company CA: tls.mode "acme" or "files") is trusted through that store, like a browser does,
 * with nothing pinned: its intermediates rotate at renewals. Otherwise like ssh: read the
 * chain the server presents, show the fingerprint of its CA (the last certificate:
 * HackStream's own CA in self-signed mode) and pin it once the user agrees, or pin the
 * certificate whose fingerprint was given (--ca-fingerprint, which always pins).
 */
export async function configure(o: ConfigureOptions): Promise<CliConfig> {
  let url: URL;
  try {
    url = new URL(o.apiUrl);
  } catch {
    throw new CliError(EXIT.USAGE, `not a URL: ${o.apiUrl} (expected https://host[:port])`);
  }
  if (url.protocol !== 'https:') throw new CliError(EXIT.USAGE, `the API URL must start with https:// (got ${o.apiUrl})`);
  const apiUrl = url.origin;
  const { socket, chain, systemProblem } = await connectPinned({ url, ...(o.address ? { address: o.address } : {}) }, undefined);
  socket.destroy();
  const leaf = chain[0];
  if (!leaf) throw new CliError(EXIT.CA_MISMATCH, `${url.host} presented no certificate; nothing was saved`);
  const expected = o.caFingerprint === undefined ? undefined : formatFingerprint(o.caFingerprint);
  if (expected === undefined && systemProblem === undefined) {
    o.log(`Server ${url.host} presented a certificate for ${commonName(leaf.subject)} issued by ${commonName(leaf.issuer)}`);
    o.log(`It is trusted by this system's CA store: nothing to pin (renewals and new intermediates keep working).`);
    const config: CliConfig = { api_url: apiUrl, trust: 'system', ...(o.address ? { address: o.address } : {}) };
    saveConfig(config);
    o.log(`Saved. Next: hackstream login`);
    return config;
  }
  const pinned = expected === undefined ? chain[chain.length - 1]! : chain.find((c) => formatFingerprint(c.fingerprint256) === expected);
  if (!pinned) {
    const seen = chain.map((c) => formatFingerprint(c.fingerprint256)).join(', ');
    throw new CliError(EXIT.CA_MISMATCH, `CA mismatch: the server presented ${seen}, not the expected ${expected}; nothing was saved`);
  }
  const fingerprint = formatFingerprint(pinned.fingerprint256);
  const problem = trustProblem(chain, fingerprint, url.hostname);
  if (problem) throw new CliError(EXIT.CA_MISMATCH, `${url.host} cannot be trusted: ${problem}; nothing was saved`);
  const previous = loadConfig();
  const presented: PresentedCertificate = {
    host: url.host,
    subject: commonName(leaf.subject),
    issuer: commonName(leaf.issuer),
    fingerprint,
    ...(previous && previous.fingerprint !== fingerprint ? { replaces: previous.fingerprint ?? 'trust through the system CA store' } : {}),
  };
  const what = pinned === leaf ? 'its own certificate' : `the CA ${commonName(pinned.subject)}`;
  o.log(`Server ${url.host} presented a certificate for ${presented.subject} issued by ${presented.issuer}`);
  o.log(`SHA-256 fingerprint of ${what}: ${fingerprint}`);
  if (presented.replaces) o.log(`(this replaces the pinned ${presented.replaces})`);
  if (expected === undefined && !o.yes && !(await (o.confirm ?? (() => confirm('Trust this server and pin its fingerprint?')))(presented))) {
    throw new CliError(EXIT.CA_MISMATCH, 'not trusted: nothing was saved (pass --yes or --ca-fingerprint SHA256 when not on a terminal)');
  }
  const config: CliConfig = { api_url: apiUrl, fingerprint, ...(o.address ? { address: o.address } : {}) };
  saveConfig(config);
  o.log(`Pinned. Next: hackstream login`);
  return config;
}
