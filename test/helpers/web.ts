import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { PUBLIC_HOST } from './gateway.js';

/** A JSON call to a HackStream started by startServer, verified against its own certificates. */
export function apiCall(
  server: { port: number; dataDir: string },
  method: string,
  path: string,
  o: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; json: unknown; headers: Record<string, string | string[] | undefined> }> {
  const certs = join(server.dataDir, 'certs');
  const ca = [readFileSync(join(certs, 'ca.crt'), 'utf8'), readFileSync(join(certs, 'api.crt'), 'utf8')];
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method,
        ca,
        servername: PUBLIC_HOST,
        agent: false,
        headers: {
          host: `${PUBLIC_HOST}:${server.port}`,
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          ...o.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown = text;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: the text itself
          }
          resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
