import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteRedisKeys, TEST_REDIS_URL } from './redis.js';
import pg from 'pg';
import { silentLogger, type Logger } from '../../lib/log.js';
import { openDatabase, type Database } from '../../core/store/database.js';
import { embeddedPaths } from '../../core/store/embedded.js';
import { findBinaries, initCluster } from '../../core/store/embedded-cluster.js';
import { resolveRunAs } from '../../core/store/embedded-user.js';
import { openKv, type KeyValueStore } from '../../core/store/kv.js';

export const TEST_DATABASE_URL =
  process.env.HACKSTREAM_TEST_DATABASE_URL ?? 'postgres://hackstream_test:hackstream_test@127.0.0.1:5432/hackstream_test';
export { TEST_REDIS_URL };

export const DATABASE_KINDS = ['postgres', 'embedded'] as const;
export type DatabaseKind = (typeof DATABASE_KINDS)[number];
export const KV_KINDS = ['redis', 'memory'] as const;
export type KvKind = (typeof KV_KINDS)[number];

export function tempDir(prefix = 'hackstream-store-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let template: Promise<string> | undefined;

/**
 * A freshly initialised (empty, unmigrated) cluster, made with the product's own initdb (as
 * the server's user) once per machine and PostgreSQL major, kept in the temp dir as a cache
 * and copied for each test: initdb takes seconds, a copy a fraction of one. A cache rather
 * than a per-process dir: a test process killed by a signal cannot clean up after itself.
 */
function clusterTemplate(): Promise<string> {
  template ??= (async () => {
    const bins = findBinaries();
    const dir = join(tmpdir(), `hackstream-pg-template-${bins.major}`);
    if (existsSync(join(dir, 'global', 'pg_control'))) return dir;
    const who = resolveRunAs('auto', undefined);
    const work = mkdtempSync(join(tmpdir(), 'hackstream-pg-build-'));
    try {
      if (who) chownSync(work, who.uid, who.gid);
      // No fsync for a throwaway template: the copies are flushed by the server's first checkpoint.
      await initCluster(bins, join(work, 'pg'), who, { sync: false });
      try {
        renameSync(join(work, 'pg'), dir);
      } catch {
        // Another test process finished first; its template is as good.
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    return dir;
  })();
  return template;
}

/** Gives `dataDir` an initialised embedded cluster, as a first start would leave it before migrating. */
export async function seedEmbedded(dataDir: string): Promise<void> {
  const { stateDir, pgdata } = embeddedPaths(dataDir);
  const source = await clusterTemplate();
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  // cp -a keeps the owner (the server's user) and modes; sparse keeps the zero-filled WAL segment cheap.
  execFileSync('cp', ['-a', '--sparse=always', source, pgdata]);
}

export interface TestDatabase {
  db: Database;
  /** Closes and opens the same database again (same schema or data dir). */
  reopen(): Promise<Database>;
  cleanup(): Promise<void>;
}

/**
 * An empty database of the given kind: real Postgres in a schema of its own (dropped by
 * cleanup), or the embedded store in a temporary data dir (removed by cleanup).
 */
export async function openTestDatabase(kind: DatabaseKind, logger: Logger = silentLogger()): Promise<TestDatabase> {
  const dataDir = tempDir();
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const open = () =>
    kind === 'postgres' ? openDatabase({ databaseUrl: TEST_DATABASE_URL, schema, dataDir, logger }) : openDatabase({ dataDir, logger });
  if (kind === 'embedded') await seedEmbedded(dataDir);
  const handle: TestDatabase = {
    db: await open(),
    async reopen() {
      await handle.db.close();
      handle.db = await open();
      return handle.db;
    },
    async cleanup() {
      await handle.db.close();
      if (kind === 'postgres') await dropSchema(schema);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    // The plugins' own schemas of that app (core/plugin/storage: <schema>_p_<plugin>).
    const plugins = await client.query<{ nspname: string }>(`SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`, [`${schema}_p_`]);
    for (const { nspname } of plugins.rows) await client.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
  } finally {
    await client.end();
  }
}

export interface TestKv {
  kv: KeyValueStore;
  prefix: string;
  cleanup(): Promise<void>;
}

/** A key-value store of the given kind; on Redis under a prefix of its own, deleted by cleanup. */
export async function openTestKv(kind: KvKind, opts: { redisUrl?: string; commandTimeoutMs?: number } = {}): Promise<TestKv> {
  const prefix = `hstest:${randomBytes(6).toString('hex')}:`;
  const kv = await openKv({
    redisPrefix: prefix,
    logger: silentLogger(),
    ...(kind === 'redis' ? { redisUrl: opts.redisUrl ?? TEST_REDIS_URL } : {}),
    ...(opts.commandTimeoutMs ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
  });
  return {
    kv,
    prefix,
    async cleanup() {
      await kv.close();
      if (kind !== 'redis') return;
      await deleteRedisKeys(prefix);
    },
  };
}

export type FaultMode = 'pass' | 'hang' | 'refuse';

/**
 * A TCP proxy on loopback in front of a real server, to fail it without touching the
 * server other tests share. "hang" stops moving bytes (they wait in the socket buffers, as
 * with a SIGSTOPped server, and flow again on "pass"); "refuse" drops every connection
 * and refuses new ones, as with a killed server.
 */
export interface FaultProxy {
  readonly port: number;
  setMode(mode: FaultMode): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  let mode: FaultMode = 'pass';
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    if (mode === 'hang') pair.forEach((s) => s.pause());
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const destroyAll = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
  };
  return {
    port,
    setMode(next) {
      mode = next;
      if (next === 'refuse') destroyAll();
      for (const pair of pairs) for (const s of pair) next === 'hang' ? s.pause() : s.resume();
    },
    async close() {
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
