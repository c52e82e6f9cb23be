import { chownSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ids } from '../lib/system-user.js';

/** The configuration keys the edge reads (server/edge.ts, edge-main.ts, process-main.ts). */
const EDGE_KEYS = ['listen', 'publicHost', 'sessionDomain', 'dataDir', 'redisUrl', 'redisPrefix', 'log', 'gateway'] as const;

/**
 * The edge never reads the operator's configuration file: that file holds what the edge has
 * no use for (plugin options with bind passwords and client secrets, the database URL). The
 * supervisor writes the edge's part of it to `<runDir>/edge-config.json` (0640, group of the
 * edge's user) and returns the HACKSTREAM_CONFIG the edge gets; without a file, nothing.
 * The environment's overrides still apply on top, as for every process.
 */
export function writeEdgeConfig(operatorFile: string | undefined, runDir: string, edge: Ids | undefined): Record<string, string> {
  if (!operatorFile) return {};
  // Already read and validated by loadConfig: this parse cannot fail on a file that loaded.
  const full = JSON.parse(readFileSync(operatorFile, 'utf8')) as Record<string, unknown>;
  const part: Record<string, unknown> = {};
  for (const key of EDGE_KEYS) if (key in full) part[key] = full[key];
  const file = join(runDir, 'edge-config.json');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(part, null, 2)}\n`, { mode: 0o640 });
  if (edge) chownSync(tmp, 0, edge.gid);
  renameSync(tmp, file);
  return { HACKSTREAM_CONFIG: file };
}
