/*
 * The agent's RPC server on a Unix socket. A connection is accepted only from a uid in the
 * allow-list (SO_PEERCRED, which the peer cannot forge); every line is parsed, its envelope,
 * version, method and params checked (lib/agent-protocol.ts) before anything runs, and every
 * refusal is audited. Exits are pushed to every connection; a connection that closes aborts
 * its in-flight creates (their containers are removed).
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../lib/log.js';
import { peerCredentials } from '../lib/peercred.js';
import {
  AGENT_METHODS,
  AGENT_PROTOCOL_VERSIONS,
  MAX_REQUEST_LINE_BYTES,
  PARAMS,
  RESULTS,
  describeIssues,
  requestSchema,
  type AgentErrorCode,
  type AgentLimits,
  type AgentMethod,
  type AgentParams,
} from '../lib/agent-protocol.js';
import { activeSpanFailed, contextFrom, SpanKind, traced, type TraceCarrier } from '../lib/tracing.js';
import type { ContainerExit } from '../core/sessions/runtime.js';
import { AUDIT_ACTOR, RefusalAudit, type AgentAudit, type Peer } from './audit.js';
import { AgentError, AUTHZ_CODES, INPUT_CODES, toAgentError } from './errors.js';
import { LineReader } from '../lib/line-reader.js';
import { agentMethods, type AgentEngine, type ProfileDeps } from './methods.js';
import type { ProfileStore } from './profiles.js';

export interface AgentServerOptions {
  socketPath: string;
  /** Peer uids let in (root is not implied). */
  allowedUids: readonly number[];
  engine: AgentEngine;
  limits: AgentLimits;
  audit: AgentAudit;
  logger: Logger;
  agentVersion: string;
  /** Audit rows per peer uid and minute before they are suppressed. Default 100. */
  auditPerMinute?: number;
  /** Mode of the socket file. Default 0o660 (the directory's mode and group decide who reaches it). */
  socketMode?: number;
  /** Persistent profiles; without them the profile methods answer RUNTIME_UNAVAILABLE. */
  profiles?: ProfileStore;
}

const MAX_CONNECTIONS = 32;
const MAX_IN_FLIGHT = 64;
/** A peer that stops reading gets dropped rather than buffered without end. */
const MAX_WRITE_BUFFER = 32 * 1024 * 1024;
const VERSIONS: readonly number[] = AGENT_PROTOCOL_VERSIONS;

interface Connection {
  socket: net.Socket;
  peer: Peer;
  abort: AbortController;
  inFlight: number;
}

export class AgentServer {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly running = new Set<Promise<void>>();
  private readonly audit: RefusalAudit;
  private readonly methods: ReturnType<typeof agentMethods>;
  private readonly log: Logger;
  private readonly allowed: ReadonlySet<number>;
  private unsubscribe: (() => void) | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: AgentServerOptions) {
    this.log = opts.logger.child({ component: 'agent' });
    this.allowed = new Set(opts.allowedUids);
    this.audit = new RefusalAudit(opts.audit, this.log, opts.auditPerMinute);
    const profiles: ProfileDeps | undefined = opts.profiles && {
      store: opts.profiles,
      audit: (e) => this.audit.note({ actor: AUDIT_ACTOR, action: e.action, target: e.userId, result: 'success', details: e.details }),
    };
    this.methods = agentMethods(opts.engine, opts.limits, opts.agentVersion, this.log, profiles);
    this.server = net.createServer((socket) => this.accept(socket));
  }

  async listen(): Promise<void> {
    // After a reboot the volumes are files again: mount them before anyone asks for a session.
    if (this.opts.profiles) this.log.info({ mounted: await this.opts.profiles.mountAll() }, 'profile volumes mounted');
    removeStaleSocket(this.opts.socketPath);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.opts.socketPath, this.opts.socketMode ?? 0o660);
    this.unsubscribe = this.opts.engine.onExit((exit) => this.broadcast(exit));
    this.log.info({ socketPath: this.opts.socketPath, allowedUids: [...this.allowed], limits: this.opts.limits }, 'agent listening');
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe?.();
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const c of this.connections) c.socket.destroy();
      await closed;
      await Promise.allSettled([...this.running]);
      await this.audit.flush();
      await this.opts.engine.close();
    })();
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'agent connection error'));
    let peer: Peer;
    try {
      const cred = peerCredentials(socket);
      peer = { uid: cred.uid, pid: cred.pid };
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'agent connection without peer credentials refused');
      socket.destroy();
      return;
    }
    if (!this.allowed.has(peer.uid) || this.connections.size >= MAX_CONNECTIONS || this.closing) {
      if (!this.allowed.has(peer.uid)) this.audit.wrongPeer(peer);
      this.log.warn({ peerUid: peer.uid, peerPid: peer.pid, allowed: this.allowed.has(peer.uid) }, 'agent connection refused');
      socket.destroy();
      return;
    }
    const conn: Connection = { socket, peer, abort: new AbortController(), inFlight: 0 };
    this.connections.add(conn);
    const reader = new LineReader(
      MAX_REQUEST_LINE_BYTES,
      (line) => this.onLine(conn, line),
      () => {
        this.refuse(conn, null, '(line)', new AgentError('BAD_REQUEST', `a request line is longer than ${MAX_REQUEST_LINE_BYTES} bytes; closing`));
        socket.end();
      },
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('close', () => {
      this.connections.delete(conn);
      conn.abort.abort(new Error('the agent client disconnected'));
    });
  }

  private onLine(conn: Connection, line: string): void {
    const parsed = parseRequest(line);
    if ('error' in parsed) {
      this.refuse(conn, parsed.id, parsed.target, parsed.error);
      return;
    }
    if (conn.inFlight >= MAX_IN_FLIGHT) {
      this.refuse(conn, parsed.id, parsed.method, new AgentError('LIMIT_EXCEEDED', `at most ${MAX_IN_FLIGHT} requests in flight per connection`));
      return;
    }
    conn.inFlight++;
    const run = this.traced(parsed.method, parsed.trace, () => this.run(conn, parsed.id, parsed.method, parsed.params)).finally(() => {
      conn.inFlight--;
      this.running.delete(run);
    });
    this.running.add(run);
  }

  /** A request that carries control's trace context runs in a span continuing that trace (docs/tracing.md). */
  private traced(method: AgentMethod, carrier: TraceCarrier | undefined, run: () => Promise<void>): Promise<void> {
    if (!carrier) return run();
    return traced(`agent.handle ${method}`, run, { kind: SpanKind.SERVER, parent: contextFrom(carrier), attributes: { 'rpc.system': 'hackstream-agent', 'rpc.method': method } });
  }

  private async run(conn: Connection, id: number, method: AgentMethod, params: AgentParams[AgentMethod]): Promise<void> {
    const ctx = { signal: conn.abort.signal, progress: (line: string) => this.send(conn, { v: 1, event: 'progress', id, line: line.slice(0, 4096) }) };
    try {
      const handler = this.methods[method] as (p: typeof params, c: typeof ctx) => Promise<unknown>;
      const result = RESULTS[method].safeParse(await handler(params, ctx));
      if (!result.success) {
        this.log.error({ method, problems: describeIssues(result.error) }, 'agent result broke its own schema');
        throw new AgentError('INTERNAL', 'the agent produced an invalid result');
      }
      this.send(conn, { v: 1, id, ok: true, result: result.data });
    } catch (err) {
      const e = toAgentError(err);
      if (e.code === 'INTERNAL' && !(err instanceof AgentError)) this.log.error({ method, err: (err as Error).message }, 'agent call failed');
      activeSpanFailed(e);
      this.refuse(conn, id, method, e);
    }
  }

  /** Answers an error; refusals of the caller (input, limits, ownership) are audited too. */
  private refuse(conn: Connection, id: number | null, target: string, err: AgentError): void {
    if (INPUT_CODES.has(err.code) || AUTHZ_CODES.has(err.code)) {
      this.log.debug({ code: err.code, target, peerUid: conn.peer.uid }, 'agent request refused');
      this.audit.refused(conn.peer, target, err.code, err.message);
    }
    this.send(conn, { v: 1, id, ok: false, error: { code: err.code, message: err.message.slice(0, 2048) } });
  }

  private broadcast(exit: ContainerExit): void {
    for (const c of this.connections) this.send(c, { v: 1, event: 'exit', data: exit });
  }

  private send(conn: Connection, message: object): void {
    const { socket } = conn;
    if (socket.destroyed || !socket.writable) return;
    if (socket.writableLength > MAX_WRITE_BUFFER) {
      this.log.warn({ peerUid: conn.peer.uid }, 'agent client does not read its answers; dropping it');
      socket.destroy();
      return;
    }
    socket.write(`${JSON.stringify(message)}\n`);
  }
}

function isMethod(m: string): m is AgentMethod {
  return (AGENT_METHODS as readonly string[]).includes(m);
}

type Parsed = { id: number; method: AgentMethod; params: AgentParams[AgentMethod]; trace?: TraceCarrier } | { error: AgentError; id: number | null; target: string };

/**
 * The request, or the refusal it earns (not JSON, wrong version, schema, unknown method) with
 * the id to answer to and the audit target (the method when it names a known one).
 */
export function parseRequest(line: string): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: new AgentError('BAD_REQUEST', 'the line is not JSON'), id: null, target: '(unparsed)' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: new AgentError('BAD_REQUEST', 'a request is a JSON object'), id: null, target: '(unparsed)' };
  }
  const rawId = 'id' in value && Number.isSafeInteger(value.id) && (value.id as number) >= 0 ? (value.id as number) : null;
  const rawMethod = 'method' in value && typeof value.method === 'string' ? value.method : null;
  const refuse = (code: AgentErrorCode, message: string) => ({ error: new AgentError(code, message), id: rawId, target: rawMethod === null ? '(none)' : isMethod(rawMethod) ? rawMethod : '(unknown method)' });
  if ('v' in value && typeof value.v === 'number' && !VERSIONS.includes(value.v)) {
    return refuse('UNSUPPORTED_VERSION', `protocol version ${String(value.v).slice(0, 32)} is not spoken here; the agent speaks ${VERSIONS.join(', ')}`);
  }
  const envelope = requestSchema.safeParse(value);
  if (!envelope.success) return refuse('VALIDATION_FAILED', describeIssues(envelope.error));
  const method = envelope.data.method;
  if (!isMethod(method)) return refuse('UNKNOWN_METHOD', `unknown method; the agent offers ${AGENT_METHODS.join(', ')}`);
  const params = PARAMS[method].safeParse(envelope.data.params);
  if (!params.success) return refuse('VALIDATION_FAILED', describeIssues(params.error, 'params'));
  const trace = envelope.data.trace;
  return { id: envelope.data.id, method, params: params.data, ...(trace ? { trace: { traceparent: trace.traceparent, ...(trace.tracestate !== undefined ? { tracestate: trace.tracestate } : {}) } } : {}) };
}

/** A socket file left by a crashed agent blocks listen(); anything else at the path is an error. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

