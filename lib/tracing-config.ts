/*
 * The `tracing` block of the config (docs/tracing.md). Absent: no OpenTelemetry SDK is loaded
 * in any process and nothing is exported. Only zod here: the edge loads the config's schema.
 */
import { z } from 'zod';

/** An HTTP header name (RFC 9110 token) for the collector, e.g. an API key header. */
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'must be an HTTP header name');

export const tracingSchema = z
  .object({
    /**
     * The OTLP/HTTP receiver's base URL, e.g. "http://127.0.0.1:4318" (an OpenTelemetry
     * Collector or Jaeger); spans go to `<otlpEndpoint>/v1/traces` as OTLP JSON.
     */
    otlpEndpoint: z
      .string()
      .max(2048)
      .refine((u) => URL.canParse(u) && ['http:', 'https:'].includes(new URL(u).protocol), 'must be an http:// or https:// URL such as "http://127.0.0.1:4318"'),
    /** `service.namespace`; each process reports as `<serviceName>-control`, `<serviceName>-agent`. */
    serviceName: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'letters, digits, "_", "." or "-", at most 63')
      .default('hackstream'),
    /** Share of new traces recorded (0–1); the agent follows control's decision for a trace. */
    sampleRatio: z.number().min(0).max(1).default(1),
    /** Sent with every export (a collector's API key); never logged. */
    headers: z.record(headerName, z.string().max(4096)).optional(),
  })
  .strict();

export type TracingConfig = z.output<typeof tracingSchema>;
