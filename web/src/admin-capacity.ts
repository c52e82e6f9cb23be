import { useCallback, useEffect, useState } from 'preact/hooks';
import { call } from './api.js';
import { errorText, html } from './admin-common.js';

/** Capacity: host memory and sessions, the pool, the runtime (Docker, image) readiness. */

interface Capacity {
  instanceId: string;
  host: { memoryTotalMb: number; memoryFreeMb: number };
  limits: { maxContainers: number; memoryMb: number };
  usage: { containers: number; memoryMb: number };
  sessions: { live: number; byState: Record<string, number> };
  pool: { size: number; ready: number; starting: number };
  runtime: { ready: boolean; reason: string | null; engineReachable: boolean | null; image: { tag: string; present: boolean } | null };
  at: string;
}

const yesNo = (v: boolean | null) => (v === null ? 'not reported' : v ? 'yes' : 'no');

export function CapacityPage() {
  const [c, setC] = useState<Capacity | null>(null);
  const [error, setError] = useState('');
  const load = useCallback(() => {
    call<Capacity>('GET', '/admin/capacity').then(setC, (err: unknown) => setError(errorText(err)));
  }, []);
  useEffect(() => {
    load();
    const t = setInterval(load, 5000);
    return () => clearInterval(t);
  }, [load]);
  if (!c) return error ? html`<p class="error" role="alert">${error}</p>` : html`<p>Loading…</p>`;
  const states = Object.entries(c.sessions.byState).map(([s, n]) => `${s} ${n}`).join(', ') || 'none';
  const row = (id: string, label: string, value: string) => html`<div><dt>${label}</dt><dd id=${id}>${value}</dd></div>`;
  return html`<section class="card" aria-labelledby="host-title"><h2 id="host-title">Host</h2><dl class="facts">
      ${row('cap-host-memory', 'Memory (free / total)', `${c.host.memoryFreeMb} MB / ${c.host.memoryTotalMb} MB`)}
      ${row('cap-sessions', 'Live sessions', `${c.sessions.live} (${states})`)}
      ${row('cap-containers', 'Containers (in use / allowed)', `${c.usage.containers} / ${c.limits.maxContainers}`)}
      ${row('cap-memory', 'Container memory limits (in use / allowed)', `${c.usage.memoryMb} MB / ${c.limits.memoryMb} MB`)}
      ${row('cap-instance', 'Instance', c.instanceId)}
    </dl></section>
    <section class="card" aria-labelledby="pool-title"><h2 id="pool-title">Pool</h2><dl class="facts">
      ${row('cap-pool-size', 'Configured size', String(c.pool.size))}
      ${row('cap-pool-ready', 'Ready', String(c.pool.ready))}
      ${row('cap-pool-starting', 'Starting', String(c.pool.starting))}
    </dl></section>
    <section class="card" aria-labelledby="runtime-title"><h2 id="runtime-title">Runtime</h2><dl class="facts">
      ${row('cap-ready', 'A session can start now', c.runtime.ready ? 'yes' : `no: ${c.runtime.reason ?? 'unknown reason'}`)}
      ${row('cap-docker', 'Docker engine reachable', yesNo(c.runtime.engineReachable))}
      ${row('cap-image', 'Session image', c.runtime.image ? `${c.runtime.image.tag}: ${c.runtime.image.present ? 'present' : 'missing'}` : 'not reported')}
    </dl>
    <p class="muted">As of ${c.at.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}; refreshes every 5 s.</p></section>`;
}
