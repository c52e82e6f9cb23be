import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { z } from 'zod';
import { normalizeHostname } from './hostname.js';

/** One client address let in to a route's upstream until `until` (ms since the epoch). */
export interface Admission {
  address: string;
  until: number;
}

/** Where a route sends its raw TCP bytes. */
export interface Upstream {
  host: string;
  port: number;
  /**
   * When set, only these client addresses may open a tunnel (the session's xpra is not
   * reachable from anywhere else); an expired entry lets nobody new in. Absent: anyone may.
   */
  admit?: Admission[];
}

/** At most this many admissions per route (each `/connect` adds one; expired ones are dropped). */
export const MAX_ADMISSIONS = 32;

const admissionSchema = z.object({ address: z.string().min(2).max(64), until: z.number().int().positive() }).strict();
/** An upstream as it travels between processes (Redis, the edge link). */
export const upstreamSchema = z
  .object({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535), admit: z.array(admissionSchema).max(MAX_ADMISSIONS).optional() })
  .strict();

/** `::ffff:1.2.3.4` → `1.2.3.4`, so an IPv4 client matches however the socket reports it. */
export function normalizeAddress(addr: string): string {
  return addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
}

/** Whether a client at `address` may open a tunnel to `upstream` at `nowMs`. */
export function isAdmitted(upstream: Upstream, address: string, nowMs: number): boolean {
  if (!upstream.admit) return true;
  const a = normalizeAddress(address);
  return upstream.admit.some((e) => e.address === a && e.until > nowMs);
}

/** `upstream` with `address` admitted until `until`: expired entries dropped, the newest kept when full. */
export function withAdmission(upstream: Upstream, address: string, until: number, nowMs: number): Upstream {
  const a = normalizeAddress(address);
  const kept = (upstream.admit ?? []).filter((e) => e.until > nowMs && e.address !== a);
  const admit = [...kept, { address: a, until }].sort((x, y) => x.until - y.until).slice(-MAX_ADMISSIONS);
  return { host: upstream.host, port: upstream.port, admit };
}

export interface Route {
  hostname: string;
  upstream: Upstream;
}

/**
 * hostname → upstream. Owned by the session manager, read by the gateway on every
 * connection (so `lookup` is synchronous and local), optionally shared through Redis.
 */
export interface RouteTable {
  add(hostname: string, upstream: Upstream): Promise<void>;
  /** Resolves true when a route was removed. */
  remove(hostname: string): Promise<boolean>;
  list(): Route[];
  lookup(hostname: string): Upstream | undefined;
  /** Called with the hostname whenever a route disappears, locally or from another instance. */
  onRemove(listener: (hostname: string) => void): () => void;
  close(): Promise<void>;
}

export class InvalidRouteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRouteError';
  }
}

export function checkRoute(hostname: string, upstream: Upstream): Route {
  const h = normalizeHostname(hostname);
  if (!h) throw new InvalidRouteError(`route hostname "${hostname}" is not a DNS hostname`);
  if (typeof upstream.host !== 'string' || upstream.host.length === 0 || upstream.host.length > 253) {
    throw new InvalidRouteError(`route ${h}: upstream host must be a hostname or IP address`);
  }
  if (!Number.isInteger(upstream.port) || upstream.port < 1 || upstream.port > 65535) {
    throw new InvalidRouteError(`route ${h}: upstream port must be 1-65535`);
  }
  if (upstream.admit === undefined) return { hostname: h, upstream: { host: upstream.host, port: upstream.port } };
  if (!Array.isArray(upstream.admit) || upstream.admit.length > MAX_ADMISSIONS) {
    throw new InvalidRouteError(`route ${h}: at most ${MAX_ADMISSIONS} admitted addresses`);
  }
  const admit = upstream.admit.map((e) => {
    const address = normalizeAddress(String(e.address));
    if (isIP(address) === 0) throw new InvalidRouteError(`route ${h}: admitted address "${e.address}" is not an IP address`);
    if (!Number.isInteger(e.until) || e.until <= 0) throw new InvalidRouteError(`route ${h}: an admission's "until" must be a time in ms`);
    return { address, until: e.until };
  });
  return { hostname: h, upstream: { host: upstream.host, port: upstream.port, admit } };
}

/** The local cache every implementation keeps; also the whole single-process table. */
export class MemoryRouteTable implements RouteTable {
  protected readonly routes = new Map<string, Upstream>();
  /** Counts applied changes, so a resync can tell that it raced with one. */
  protected changes = 0;
  private readonly events = new EventEmitter();

  async add(hostname: string, upstream: Upstream): Promise<void> {
    const r = checkRoute(hostname, upstream);
    this.apply({ op: 'add', ...r });
  }

  async remove(hostname: string): Promise<boolean> {
    const h = normalizeHostname(hostname);
    return h !== null && this.apply({ op: 'remove', hostname: h });
  }

  list(): Route[] {
    return [...this.routes].map(([hostname, upstream]) => ({ hostname, upstream: copyUpstream(upstream) }));
  }

  lookup(hostname: string): Upstream | undefined {
    return this.routes.get(hostname);
  }

  onRemove(listener: (hostname: string) => void): () => void {
    this.events.on('remove', listener);
    return () => this.events.off('remove', listener);
  }

  async close(): Promise<void> {
    this.events.removeAllListeners();
  }

  /**
   * A change made elsewhere (another process owns this table's routes): applied to the local
   * copy only. Returns whether it changed anything.
   */
  applyChange(change: RouteChange): boolean {
    const h = normalizeHostname(change.hostname);
    if (!h) return false;
    return this.apply(change.op === 'add' ? { op: 'add', ...checkRoute(h, change.upstream) } : { op: 'remove', hostname: h });
  }

  /** Replaces the local copy with `routes` (a snapshot from the owner), announcing removals. */
  replaceRoutes(routes: Route[]): void {
    this.changes++;
    this.replaceAll(new Map(routes.map((r) => checkRoute(r.hostname, r.upstream)).map((r) => [r.hostname, r.upstream])));
  }

  /** Applies one change to the local map; returns whether it changed anything. */
  protected apply(change: RouteChange): boolean {
    this.changes++;
    if (change.op === 'add') {
      this.routes.set(change.hostname, change.upstream);
      return true;
    }
    const had = this.routes.delete(change.hostname);
    if (had) this.events.emit('remove', change.hostname);
    return had;
  }

  /** Replaces the whole local map (after a resync), announcing routes that vanished. */
  protected replaceAll(routes: Map<string, Upstream>): void {
    for (const h of [...this.routes.keys()]) {
      if (!routes.has(h)) this.apply({ op: 'remove', hostname: h });
    }
    for (const [h, u] of routes) this.routes.set(h, u);
  }
}

export type RouteChange = ({ op: 'add' } & Route) | { op: 'remove'; hostname: string };

function copyUpstream(u: Upstream): Upstream {
  return u.admit ? { host: u.host, port: u.port, admit: u.admit.map((e) => ({ ...e })) } : { host: u.host, port: u.port };
}
