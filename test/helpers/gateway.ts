import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { createApp, type AppOptions, type HackStream } from '../../server/app.js';
import { parseConfig } from '../../core/config/load.js';
import type { ConfigInput } from '../../core/config/schema.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import type { UpgradeHandler } from '../../gateway/terminate.js';
import type { IssuedCert } from '../../core/certs/types.js';
import { embeddedPaths } from '../../core/store/embedded.js';
import { portOf } from './net.js';
import { seedEmbedded } from './store.js';

export const PUBLIC_HOST = 'hackstream.test';
export const SESSION_DOMAIN = 'sessions.test';

export interface TestGateway {
  app: HackStream;
  port: number;
  ca: string;
  dataDir: string;
  close(): Promise<void>;
}

/** A real HackStream (gateway + API) on 127.0.0.1, an OS-chosen port and a fresh data dir. */
export async function startGateway(
  input: Partial<ConfigInput> = {},
  opts: {
    logger?: Logger;
    onUpgrade?: UpgradeHandler;
    dataDir?: string;
    /** More createApp options (bootstrap admin, auth settings, database schema). */
    app?: Omit<AppOptions, 'logger' | 'onUpgrade'>;
  } = {},
): Promise<TestGateway> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'hs-gw-'));
  const config = parseConfig({
    listen: '127.0.0.1:0',
    publicHost: PUBLIC_HOST,
    sessionDomain: SESSION_DOMAIN,
    dataDir,
    log: { level: 'silent' },
    // No pre-warmed containers unless a test asks for them.
    sessions: { pool: { size: 0 } },
    ...input,
  });
  // The embedded database's initdb takes seconds; a copy of an initialised template does not.
  if (!config.databaseUrl && !existsSync(embeddedPaths(dataDir).pgdata)) await seedEmbedded(dataDir);
  const app = await createApp(config, {
    ...opts.app,
    logger: opts.logger ?? silentLogger(),
    ...(opts.onUpgrade ? { onUpgrade: opts.onUpgrade } : {}),
  });
  const addr = await app.listen();
  return {
    app,
    port: addr.port,
    ca: app.certs.ca.certPem,
    dataDir,
    async close() {
      await app.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TlsBackend {
  server: tls.Server;
  port: number;
  /** SNI names the backend saw, in order. */
  servernames: Array<string | false>;
  close(): Promise<void>;
}

/** A real TLS server (the stand-in for a session's xpra) presenting a per-session cert. */
export async function startTlsBackend(
  cert: IssuedCert,
  onSecure: (s: tls.TLSSocket) => void = (s) => s.pipe(s),
  options: tls.TlsOptions = {},
): Promise<TlsBackend> {
  const servernames: Array<string | false> = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ...options }, (s) => {
    servernames.push(s.servername ?? false);
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => {});
    onSecure(s);
  });
  server.on('tlsClientError', (_e, s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: portOf(server),
    servernames,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  };
}

export interface HttpsResult {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  reusedSocket: boolean;
}

/** An HTTPS request to the gateway with SNI = host (default the API host), verified against the CA. */
export function httpsRequest(
  port: number,
  ca: string,
  path: string,
  o: { host?: string; servername?: string | null; agent?: https.Agent; headers?: Record<string, string>; method?: string } = {},
): Promise<HttpsResult> {
  const host = o.host ?? PUBLIC_HOST;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? 'GET',
        ca,
        servername: o.servername === null ? '' : (o.servername ?? host),
        headers: { host, ...o.headers },
        ...(o.agent ? { agent: o.agent } : { agent: false }),
        ...(o.servername === null ? { checkServerIdentity: () => undefined } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers, reusedSocket: req.reusedSocket }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}
