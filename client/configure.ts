import { loadConfig, saveConfig, type CliConfig } from './config.js';
import { CliError, EXIT } from './errors.js';
import { connectPinned, formatFingerprint } from './http.js';
import { confirm } from './prompt.js';

export interface ConfigureOptions {
  apiUrl: string;
  address?: string;
  caFingerprint?: string;
  yes: boolean;
  log: (m: string) => void;
}

/**
 * First contact, like ssh: read the certificate the server presents, show its SHA-256 and
 * pin it once the user agrees (or the expected value was given). The gateway sends only
 * its API certificate, not the CA's, so the pin is that certificate's fingerprint.
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
  const { socket, fingerprint, cert } = await connectPinned({ url, ...(o.address ? { address: o.address } : {}) }, undefined);
  socket.destroy();
  o.log(`Server ${url.host} presented a certificate for ${String(cert.subject?.CN ?? '?')} issued by ${String(cert.issuer?.CN ?? '?')}`);
  o.log(`SHA-256 fingerprint: ${fingerprint}`);
  const previous = loadConfig();
  if (previous && previous.fingerprint !== fingerprint) o.log(`(this replaces the pinned ${previous.fingerprint})`);
  if (o.caFingerprint !== undefined) {
    if (formatFingerprint(o.caFingerprint) !== fingerprint)
      throw new CliError(EXIT.CA_MISMATCH, `CA mismatch: the server presented ${fingerprint}, not the expected ${formatFingerprint(o.caFingerprint)}; nothing was saved`);
  } else if (!o.yes && !(await confirm('Trust this server and pin its fingerprint?'))) {
    throw new CliError(EXIT.CA_MISMATCH, 'not trusted: nothing was saved (pass --yes or --ca-fingerprint SHA256 when not on a terminal)');
  }
  const config: CliConfig = { api_url: apiUrl, fingerprint, ...(o.address ? { address: o.address } : {}) };
  saveConfig(config);
  o.log(`Pinned. Next: hackstream login`);
  return config;
}
