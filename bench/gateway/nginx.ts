/** nginx `stream` + `ssl_preread` as the reference router: config, start, stop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './proc.js';

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export interface NginxOptions {
  dir: string;
  port: number;
  hostname: string;
  backendPort: number;
  workers: number;
}

/**
 * The same job as our gateway: peek the ClientHello, map the SNI to an upstream, splice bytes.
 * Unknown or missing SNI goes to a closed port (fail closed). Timeouts match the gateway's bench config.
 */
export function nginxConfig(o: NginxOptions): string {
  return `load_module ${NGINX_STREAM_MODULE};
worker_processes ${o.workers};
worker_rlimit_nofile 65536;
pid ${join(o.dir, 'nginx.pid')};
error_log ${join(o.dir, 'nginx-error.log')} warn;
daemon off;
events { worker_connections 32768; }
stream {
  map $ssl_preread_server_name $upstream {
    hostnames;
    ${o.hostname} 127.0.0.1:${o.backendPort};
    default 127.0.0.1:1;
  }
  server {
    listen 127.0.0.1:${o.port} backlog=4096;
    ssl_preread on;
    preread_timeout 10s;
    proxy_pass $upstream;
    proxy_connect_timeout 5s;
    proxy_timeout 600s;
  }
}
`;
}

export interface Nginx {
  proc: ChildProcess;
  /** Master and worker pids (for CPU and RSS). */
  pids(): number[];
  stop(): Promise<void>;
}

export async function startNginx(o: NginxOptions): Promise<Nginx> {
  const conf = join(o.dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(o));
  const proc = spawn('nginx', ['-p', o.dir, '-e', join(o.dir, 'nginx-error.log'), '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const master = proc.pid;
  if (master === undefined) throw new Error('nginx did not start');
  const workers = (): number[] => {
    try {
      return readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  for (let i = 0; i < 100 && (workers().length < o.workers || !existsSync(join(o.dir, 'nginx.pid'))); i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    await sleep(50);
  }
  if (workers().length < o.workers) throw new Error(`nginx workers did not start: ${stderr}`);
  return {
    proc,
    pids: () => [master, ...workers()],
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
