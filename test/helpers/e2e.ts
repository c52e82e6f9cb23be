import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { X_PATH, type Box, type Screenshot } from './display.js';
import { spawnHackstream, waitForLine } from './server-process.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where the end-to-end tests keep their screenshots and logs (CI uploads it; git ignores it). */
export const ARTIFACTS_DIR = join(ROOT, 'artifacts', 'e2e');

/** Empties (or creates) an artefact folder under ARTIFACTS_DIR and returns a writer into it. */
export function artifacts(name: string): { dir: string; path(file: string): string; write(file: string, text: string): void } {
  const dir = join(ARTIFACTS_DIR, name);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) rmSync(join(dir, f), { recursive: true, force: true });
  return { dir, path: (file) => join(dir, file), write: (file, text) => writeFileSync(join(dir, file), text) };
}

export interface ServerProcess {
  readonly port: number;
  readonly dataDir: string;
  /** The first administrator's generated password, as printed once on stderr. */
  readonly adminPassword: string;
  /** SHA-256 of the API certificate (what `hackstream configure --ca-fingerprint` pins). */
  readonly apiFingerprint: string;
  /** The JSON log lines (stdout) so far. */
  logs(): string[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * HackStream as README's `npm start` runs it (the same entry, server/main.ts, from the sources),
 * with its embedded store under `dataDir`, configured by `HACKSTREAM_CONFIG` and a few
 * variables. Resolves once it logs "hackstream listening".
 */
export async function startServer(o: { dataDir: string; publicHost: string; config: unknown; env?: Record<string, string>; timeoutMs?: number }): Promise<ServerProcess> {
  const configFile = join(o.dataDir, 'hackstream.json');
  writeFileSync(configFile, JSON.stringify(o.config, null, 2));
  const p = spawnHackstream(
    { HACKSTREAM_CONFIG: configFile, HACKSTREAM_DATA_DIR: o.dataDir, HACKSTREAM_LISTEN: '127.0.0.1:0', HACKSTREAM_PUBLIC_HOST: o.publicHost, ...o.env },
    { cwd: o.dataDir },
  );
  const stop = async (graceMs = 30_000): Promise<number | null> => {
    if (p.exitCode() !== undefined) return p.exitCode() ?? null;
    p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
    const code = await p.exit;
    clearTimeout(timer);
    return code;
  };
  let port: number;
  try {
    port = (JSON.parse(await waitForLine(p, /"msg":"hackstream listening"/, o.timeoutMs ?? 120_000)) as { port: number }).port;
  } catch (err) {
    await stop(0);
    throw new Error(`HackStream did not start: ${(err as Error).message}`);
  }
  const stderr = p.stderr();
  const adminPassword = /^\s*password: (\S+)$/m.exec(stderr)?.[1];
  if (!adminPassword) {
    await stop(0);
    throw new Error(`no generated admin password on stderr (is the data dir fresh?):\n${stderr}`);
  }
  const apiFingerprint = new X509Certificate(readFileSync(join(o.dataDir, 'certs', 'api.crt'))).fingerprint256;
  return { port, dataDir: o.dataDir, adminPassword, apiFingerprint, logs: () => [...p.lines], stop };
}

/** The host's IPv4 address on its default-route interface (what a container can dial). */
export function hostAddress(): string {
  const routes = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1);
  const iface = routes.map((l) => l.split('\t')).find((f) => f[1] === '00000000')?.[0];
  const addr = iface ? networkInterfaces()[iface]?.find((a) => a.family === 'IPv4')?.address : undefined;
  if (!addr) throw new Error('the host has no default-route IPv4 address for the session container to reach the test page on');
  return addr;
}

export interface PageHit {
  method: string;
  path: string;
  remote: string;
  userAgent: string;
}

export interface PageServer {
  readonly url: string;
  /** Every request so far. */
  readonly hits: PageHit[];
  close(): Promise<void>;
}

/** Serves `html` at `/` (and 204 for anything else, recorded: the page reports its events there). */
export async function servePage(html: string, host: string): Promise<PageServer> {
  const hits: PageHit[] = [];
  const server = http.createServer((req, res) => {
    hits.push({ method: req.method ?? '', path: req.url ?? '', remote: req.socket.remoteAddress ?? '', userAgent: req.headers['user-agent'] ?? '' });
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(204);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://${host}:${port}/`,
    hits,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A rectangle of a screenshot as its own PNG, scaled by an integer factor (helps OCR). */
export function crop(shot: Screenshot, box: Omit<Box, 'count'>, scale = 1): PNG {
  const x = Math.max(0, box.x);
  const y = Math.max(0, box.y);
  const width = Math.min(box.width, shot.width - x);
  const height = Math.min(box.height, shot.height - y);
  const out = new PNG({ width: width * scale, height: height * scale });
  for (let j = 0; j < out.height; j++) {
    for (let i = 0; i < out.width; i++) {
      const from = ((y + Math.floor(j / scale)) * shot.width + x + Math.floor(i / scale)) * 4;
      shot.png.data.copy(out.data, (j * out.width + i) * 4, from, from + 4);
    }
  }
  return out;
}

/**
 * Tesseract's reading of the dark text in a region of a screenshot. The region is scaled up
 * and reduced to black ink (every channel dark) on white, so text on a coloured block reads
 * as well as text on white; that image is kept in `file`.
 */
export async function ocr(shot: Screenshot, box: Omit<Box, 'count'>, file: string): Promise<string> {
  const png = crop(shot, box, 2);
  const d = png.data;
  for (let i = 0; i < d.length; i += 4) {
    const ink = Math.max(d[i] ?? 0, d[i + 1] ?? 0, d[i + 2] ?? 0) < 110;
    d[i] = d[i + 1] = d[i + 2] = ink ? 0 : 255;
  }
  writeFileSync(file, PNG.sync.write(png));
  const { stdout } = await run('tesseract', [file, 'stdout', '-l', 'eng', '--psm', '11'], { env: { ...process.env, PATH: X_PATH } });
  return stdout;
}

export interface TcpConnection {
  localPort: number;
  peerPort: number;
  process: string;
  pid: number;
}

/** Established TCP connections from 127.0.0.1 to `port`, with the process that owns each client end. */
export async function connectionsTo(port: number): Promise<TcpConnection[]> {
  const { stdout } = await run('ss', ['-tnpH', 'state', 'established', `dport = :${port}`]);
  const found: TcpConnection[] = [];
  for (const line of stdout.split('\n')) {
    // Recv-Q Send-Q Local:Port Peer:Port users:(("name",pid=…,fd=…))
    const m = /\s(\S+):(\d+)\s+(\S+):(\d+)\s+users:\(\("([^"]+)",pid=(\d+)/.exec(line);
    if (m) found.push({ localPort: Number(m[2]), peerPort: Number(m[4]), process: m[5] ?? '', pid: Number(m[6]) });
  }
  return found;
}

/**
 * Kills the server's end of the connection from `clientPort` to the listener on `port`
 * (`ss -K`: the socket is destroyed in the kernel, which resets the client end), as a
 * network drop at the gateway would. Resolves with how many sockets ss killed.
 */
export async function killServerSide(port: number, clientPort: number): Promise<number> {
  const { stdout } = await run('ss', ['-K', '-tnH', `sport = :${port} and dport = :${clientPort}`]);
  return stdout.split('\n').filter((l) => l.trim()).length;
}
