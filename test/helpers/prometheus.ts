/*
 * Debian's real Prometheus server (the `prometheus` package) for tests: a generated config,
 * its own TSDB in a temp dir, a free port on loopback; `query` asks its HTTP API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { freePort, portOf } from './net.js';

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface TestPrometheus {
  url: string;
  dir: string;
  /** An instant query; the result vector (throws when Prometheus answers an error). */
  query(q: string): Promise<PromSample[]>;
  /** GET `path` of its API (`/api/v1/...`), its `data`. */
  api(path: string): Promise<unknown>;
  /** Polls `check` until it answers a value (not undefined); rejects after `ms` with Prometheus's stderr. */
  until<T>(what: string, check: () => Promise<T | undefined>, ms?: number): Promise<T>;
  close(): Promise<void>;
}

/** Starts Prometheus with `config` (prometheus.yml text) written to its own dir, with `files` beside it. */
export async function startPrometheus(config: (dir: string) => string, files: Record<string, string> = {}): Promise<TestPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'hs-prom-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 });
  writeFileSync(join(dir, 'prometheus.yml'), config(dir));
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  const api = async (path: string): Promise<unknown> => {
    const res = await fetch(url + path);
    const body = (await res.json()) as { status: string; data?: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  const until = async <T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      if (gone) throw new Error(`prometheus exited; stderr:\n${stderr}`);
      const v = await check().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}; prometheus stderr:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const p: TestPrometheus = {
    url,
    dir,
    api,
    async query(q) {
      const data = (await api(`/api/v1/query?query=${encodeURIComponent(q)}`)) as { resultType: string; result: PromSample[] };
      return data.result;
    },
    until,
    async close() {
      if (!gone) child.kill('SIGTERM');
      // Prometheus drains on SIGTERM; one that does not within 10 s is killed.
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await until('prometheus is ready', async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined));
  } catch (err) {
    await p.close();
    throw err;
  }
  return p;
}

/** Metric names in a Prometheus text exposition (histograms and summaries with their series suffixes). */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name = '', type] = m;
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

/** Metric names a PromQL expression uses (HackStream's and the Node/process defaults; `up`). */
export function namesInExpr(expr: string): string[] {
  const names = [...expr.matchAll(/\b(?:hackstream|process|nodejs)_[A-Za-z0-9_]+\b/g)].map((m) => m[0]);
  if (/\bup\b/.test(expr.replace(/"[^"]*"/g, ''))) names.push('up');
  return names;
}

/**
 * An HTTP CONNECT proxy that sends every tunnel to `to` on loopback, for Prometheus's
 * `proxy_url`: it then scrapes `https://<publicHost>:<port>` with the right SNI and Host
 * header, as it would through DNS, without touching /etc/hosts.
 */
export async function startConnectProxy(to: { port: number }): Promise<{ url: string; tunnels: () => number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.writeHead(405).end());
  let tunnels = 0;
  const sockets = new Set<Duplex>();
  server.on('connect', (_req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    tunnels++;
    const upstream = net.connect(to.port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    // Both ends are tracked: a tunnelled socket is no longer the HTTP server's to close, and
    // the server's close waits for it (a client end left half-open hung a CI run's teardown).
    for (const s of [upstream, client]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${portOf(server)}`,
    tunnels: () => tunnels,
    async close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
