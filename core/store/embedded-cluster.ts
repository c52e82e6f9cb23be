import { spawn } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedStoreError } from './embedded-errors.js';
import type { RunAs } from './embedded-user.js';

/*
 * The cluster on disk: which PostgreSQL binaries run it, initdb, and the configuration
 * written at every start (so a moved data dir or a newer HackStream brings its settings).
 */

const DEBIAN_ROOT = '/usr/lib/postgresql';

export interface Binaries {
  /** Major version, e.g. 15. */
  major: number;
  initdb: string;
  postgres: string;
}

/**
 * Debian's server binaries, newest major first; an existing cluster needs its own major
 * (PG_VERSION), since a newer server does not read an older cluster without pg_upgrade.
 */
export function findBinaries(pgdata?: string): Binaries {
  const installed = installedMajors();
  if (installed.length === 0) {
    throw new EmbeddedStoreError(
      'EMBEDDED_NO_POSTGRES',
      `no PostgreSQL server found under ${DEBIAN_ROOT}/<version>/bin: install Debian's postgresql-15 (npm start and npm test do), or set HACKSTREAM_DATABASE_URL`,
    );
  }
  const versionFile = pgdata ? join(pgdata, 'PG_VERSION') : undefined;
  const clusterMajor = versionFile && existsSync(versionFile) ? Number(readFileSync(versionFile, 'utf8').trim()) : undefined;
  const major = clusterMajor ?? (installed[0] as number);
  if (!installed.includes(major)) {
    throw new EmbeddedStoreError(
      'EMBEDDED_VERSION_MISMATCH',
      `the cluster in ${pgdata} is PostgreSQL ${major}, installed: ${installed.join(', ')}; install postgresql-${major} or upgrade the cluster with pg_upgrade`,
    );
  }
  const bin = join(DEBIAN_ROOT, String(major), 'bin');
  return { major, initdb: join(bin, 'initdb'), postgres: join(bin, 'postgres') };
}

function installedMajors(): number[] {
  let names: string[];
  try {
    names = readdirSync(DEBIAN_ROOT);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^\d+$/.test(n) && existsSync(join(DEBIAN_ROOT, n, 'bin', 'postgres')) && existsSync(join(DEBIAN_ROOT, n, 'bin', 'initdb')))
    .map(Number)
    .sort((a, b) => b - a);
}

/** Runs initdb into the empty directory `pgdata` as `who` (PostgreSQL refuses root). */
export async function initCluster(bins: Binaries, pgdata: string, who: RunAs | null, opts: { sync?: boolean } = {}): Promise<void> {
  const args = ['-D', pgdata, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions'];
  if (opts.sync === false) args.push('--no-sync');
  const child = spawn(bins.initdb, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(who ? { uid: who.uid, gid: who.gid } : {}), env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' } });
  let output = '';
  child.stdout.on('data', (c: Buffer) => void (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => void (output += c.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  }).catch((err: unknown) => {
    throw new EmbeddedStoreError('EMBEDDED_INITDB_FAILED', `cannot run ${bins.initdb}`, { cause: err });
  });
  if (code !== 0) throw new EmbeddedStoreError('EMBEDDED_INITDB_FAILED', `initdb exited with ${code}: ${output.trim().split('\n').slice(-5).join(' | ')}`);
}

/**
 * Small and durable. Memory: 16 MB of shared buffers, few processes (no replication, one
 * autovacuum worker, no parallel query, no JIT). Durability: every commit is flushed to the
 * WAL before it is acknowledged (fsync, synchronous_commit) and torn pages are recoverable
 * (full_page_writes). Access: no TCP at all; a Unix socket in a 0700 directory whose owner is
 * the server's user, so only that user and root can connect (auth "trust" on the socket).
 */
export function serverSettings(socketDir: string): Record<string, string> {
  return {
    listen_addresses: "''",
    port: '5432',
    unix_socket_directories: quote(socketDir),
    unix_socket_permissions: '0700',
    max_connections: '40',
    superuser_reserved_connections: '3',
    shared_buffers: '16MB',
    wal_buffers: '1MB',
    work_mem: '2MB',
    maintenance_work_mem: '16MB',
    temp_buffers: '2MB',
    max_wal_size: '96MB',
    min_wal_size: '32MB',
    huge_pages: 'off',
    dynamic_shared_memory_type: 'posix',
    wal_level: 'minimal',
    max_wal_senders: '0',
    archive_mode: 'off',
    max_worker_processes: '2',
    max_parallel_workers: '0',
    max_parallel_workers_per_gather: '0',
    max_parallel_maintenance_workers: '0',
    autovacuum_max_workers: '1',
    jit: 'off',
    fsync: 'on',
    synchronous_commit: 'on',
    full_page_writes: 'on',
    wal_sync_method: 'fdatasync',
    log_destination: "'stderr'",
    logging_collector: 'off',
    log_min_messages: 'warning',
    log_line_prefix: quote('%m [%p] '),
    log_timezone: "'UTC'",
    timezone: "'UTC'",
    cluster_name: "'hackstream'",
    datestyle: "'iso, mdy'",
    lc_messages: "'C'",
    default_text_search_config: "'pg_catalog.english'",
  };
}

/**
 * Rewrites postgresql.conf and pg_hba.conf (socket only, trust). Local tuning belongs in
 * postgresql.auto.conf (ALTER SYSTEM), which PostgreSQL reads after this file.
 */
export function writeConfig(pgdata: string, socketDir: string, who: RunAs | null): void {
  const conf = Object.entries(serverSettings(socketDir))
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n');
  writeOwned(join(pgdata, 'postgresql.conf'), `# Written by HackStream at every start; use ALTER SYSTEM for local changes.\n${conf}\n`, who);
  writeOwned(join(pgdata, 'pg_hba.conf'), '# Written by HackStream: the socket directory (0700) is the access control.\nlocal all all trust\n', who);
}

function writeOwned(file: string, text: string, who: RunAs | null): void {
  writeFileSync(file, text, { mode: 0o600 });
  if (who) chownSync(file, who.uid, who.gid);
}

function quote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
