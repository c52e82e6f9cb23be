/*
 * Spans for HackStream's own code (docs/tracing.md), through the OpenTelemetry API only: when
 * no SDK runs (no `tracing` block) every call here is the API's no-op, a few allocations and
 * no I/O. lib/tracing-sdk.ts starts the SDK when configured.
 *
 * Attributes are chosen, never copied from input: no token, password, key, cookie or query
 * string goes into a span (docs/tracing.md lists them all).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';

export { SpanKind };
export type { Span, Attributes };

const TRACER = 'hackstream';

export interface SpanOptions {
  attributes?: Attributes;
  kind?: SpanKind;
  /** Default: the active context (the span is a child of the active span). */
  parent?: Context;
}

/**
 * Runs `fn` in a new span, a child of the active one (or of `parent`), active while `fn`
 * runs; ends it, and marks it failed with the error's type (never its message) when `fn`
 * throws.
 */
export function traced<T>(name: string, fn: (span: Span) => Promise<T>, opts: SpanOptions = {}): Promise<T> {
  const tracer = trace.getTracer(TRACER);
  return tracer.startActiveSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, opts.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      failed(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Like `traced`, but only inside a trace: without an active span `fn` just runs. For steps
 * that background work (pool refills, the reconciler, the reaper's polls) also takes, so
 * they start no trace of their own.
 */
export function tracedStep<T>(name: string, fn: () => Promise<T>, opts: Omit<SpanOptions, 'parent'> = {}): Promise<T> {
  if (!trace.getActiveSpan()) return fn();
  return traced(name, fn, opts);
}

/** Marks a span failed: `error.type` is an error code (`QUOTA_EXCEEDED`) or class name, nothing user-supplied. */
export function failed(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.setAttribute('error.type', errorType(err));
}

/** Adds attributes to the active span (if any). */
export function annotate(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** Marks the active span (if any) failed: for code that answers an error instead of throwing it. */
export function activeSpanFailed(err: unknown): void {
  const span = trace.getActiveSpan();
  if (span) failed(span, err);
}

function errorType(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(code)) return code;
    if (err instanceof Error && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(err.name)) return err.name;
  }
  return '_OTHER';
}

/** W3C trace context as it crosses a process boundary (the agent's RPC: `trace` on a request). */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

/** The active span's context as W3C headers, or undefined when nothing is traced (no SDK, no span). */
export function currentTraceCarrier(): TraceCarrier | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  const { traceparent, tracestate } = carrier;
  if (!traceparent) return undefined;
  return { traceparent, ...(tracestate ? { tracestate } : {}) };
}

/** The remote parent a carrier names (a root context when there is none or it is malformed). */
export function contextFrom(carrier: TraceCarrier | undefined): Context {
  if (!carrier) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/** A context with no parent span: a span started in it begins a new trace. */
export { ROOT_CONTEXT };
