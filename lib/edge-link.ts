import { z } from 'zod';
import { upstreamSchema as upstream } from './route-table.js';

/*
 * The private link between an edge process and the control plane of its host: newline-delimited
 * JSON on a Unix socket that control listens on (`<runDir>/control/edge.sock`) and only the
 * edge's uid may connect to. Control sends what the edge needs to route and terminate (routes,
 * the API certificate, ACME challenge certificates); the edge sends what control needs to run
 * sessions (open tunnels per hostname, its counters, its crash report).
 */

export const EDGE_LINK_VERSION = 1;

const pem = z.string().min(1).max(64 * 1024);
const keyPair = z.object({ certPem: pem, keyPem: pem }).strict();
const hostname = z.string().min(1).max(253);
const route = z.object({ hostname, upstream }).strict();

/** control → edge */
export const toEdgeSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('hello'), v: z.number().int() }).strict(),
  /** Every route control knows; replaces the edge's copy. */
  z.object({ t: z.literal('routes'), seq: z.number().int(), routes: z.array(route).max(100_000) }).strict(),
  z.object({ t: z.literal('route'), seq: z.number().int(), op: z.literal('add'), hostname, upstream }).strict(),
  z.object({ t: z.literal('unroute'), seq: z.number().int(), hostname }).strict(),
  /** The API hostname's certificate (chain) and key. */
  z.object({ t: z.literal('cert'), pair: keyPair }).strict(),
  /** A TLS-ALPN-01 challenge certificate for `hostname`; null withdraws it. */
  z.object({ t: z.literal('acme'), hostname, pair: keyPair.nullable() }).strict(),
  z.object({ t: z.literal('close-tunnels'), hostname }).strict(),
  /** Send your counters now (someone reads /v1/metrics). */
  z.object({ t: z.literal('report') }).strict(),
]);
export type ToEdge = z.infer<typeof toEdgeSchema>;

const counter = z.number().int().min(0);
export const edgeMetricsSchema = z
  .object({
    accepted: counter,
    routed: counter,
    terminated: counter,
    rejected: z.record(z.string().max(64), counter),
    bytesUpstream: counter,
    bytesDownstream: counter,
    activeTunnels: counter,
    activeConnections: counter,
    pendingConnections: counter,
  })
  .strict();

/** edge → control */
export const toControlSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('hello'), v: z.number().int(), pid: z.number().int(), port: z.number().int().min(0).max(65535) }).strict(),
  /** The edge accepts connections on `port` now. */
  z.object({ t: z.literal('listening'), port: z.number().int().min(1).max(65535) }).strict(),
  /** The edge applied every change up to `seq`. */
  z.object({ t: z.literal('ack'), seq: z.number().int() }).strict(),
  /** Open tunnels to `hostname` through this edge, after a change. */
  z.object({ t: z.literal('tunnels'), hostname, open: counter }).strict(),
  z.object({ t: z.literal('metrics'), metrics: edgeMetricsSchema }).strict(),
  /** Sent by an edge dying of an unhandled error, so control can audit it. */
  z.object({ t: z.literal('crash'), pid: z.number().int(), error: z.string().max(2000) }).strict(),
]);
export type ToControl = z.infer<typeof toControlSchema>;
