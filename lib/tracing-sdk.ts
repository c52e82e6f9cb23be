/*
 * Starts the OpenTelemetry SDK in this process when the config has a `tracing` block: spans
 * are batched and sent as OTLP/HTTP JSON to `<otlpEndpoint>/v1/traces`. Without the block
 * nothing is loaded (the SDK is imported only here, dynamically) and the API stays a no-op.
 *
 * A collector that is down or slow never hurts the process: exports time out after 5 s,
 * their errors go to the log (at most once a minute), spans beyond the queue are dropped,
 * and shutdown (which flushes) gives up after 5 s.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import type { Logger } from './log.js';
import type { TracingConfig } from './tracing-config.js';

export interface Tracing {
  readonly enabled: boolean;
  /** Flushes what is queued (bounded by a deadline) and stops the SDK; never rejects. */
  shutdown(): Promise<void>;
}

const OFF: Tracing = { enabled: false, shutdown: () => Promise.resolve() };
const EXPORT_TIMEOUT_MS = 5_000;
const SHUTDOWN_DEADLINE_MS = 5_000;
const ERROR_LOG_EVERY_MS = 60_000;

/** The exporter's URL: the endpoint's path plus `v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT does. */
export function tracesUrl(otlpEndpoint: string): string {
  const u = new URL(otlpEndpoint);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/traces`;
  return u.href;
}

/**
 * The SDK for one process, named `<serviceName>-<processName>` (service.name) in the
 * namespace `<serviceName>`. Only one SDK per process: a second start before shutdown fails.
 */
export async function startTracing(cfg: TracingConfig | undefined, processName: string, logger: Logger): Promise<Tracing> {
  if (!cfg) return OFF;
  const [{ NodeSDK }, { OTLPTraceExporter }, { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler }, { resourceFromAttributes }, { W3CTraceContextPropagator, setGlobalErrorHandler }] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/core'),
    ]);
  const { ATTR_SERVICE_NAME } = await import('@opentelemetry/semantic-conventions');
  const log = logger.child({ component: 'tracing' });
  let lastErrorLog = 0;
  let suppressed = 0;
  // Export failures (collector down, refused, slow) reach here; the spans are dropped.
  setGlobalErrorHandler((err) => {
    const now = Date.now();
    if (now - lastErrorLog < ERROR_LOG_EVERY_MS) {
      suppressed++;
      return;
    }
    lastErrorLog = now;
    log.warn({ err: err instanceof Error ? err.message : String(err).slice(0, 300), suppressed }, 'trace export failed; spans dropped');
    suppressed = 0;
  });
  const exporter = new OTLPTraceExporter({
    url: tracesUrl(cfg.otlpEndpoint),
    timeoutMillis: EXPORT_TIMEOUT_MS,
    ...(cfg.headers ? { headers: { ...cfg.headers } } : {}),
  });
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: `${cfg.serviceName}-${processName}`, 'service.namespace': cfg.serviceName, 'process.pid': process.pid }),
    autoDetectResources: false,
    spanProcessors: [new BatchSpanProcessor(exporter, { exportTimeoutMillis: EXPORT_TIMEOUT_MS, maxQueueSize: 4096 })],
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(cfg.sampleRatio) }),
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [],
    // Traces only: without these the SDK would start OTLP metric and log exporters from OTEL_* defaults.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  // Never the URL's path, query or credentials: the origin says where spans go.
  log.info({ endpoint: new URL(cfg.otlpEndpoint).origin, sampleRatio: cfg.sampleRatio, service: `${cfg.serviceName}-${processName}` }, 'tracing on');
  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown() {
      stopping ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), SHUTDOWN_DEADLINE_MS);
          timer.unref();
        });
        const outcome = await Promise.race([sdk.shutdown().then(() => 'done' as const, (err: unknown) => err), deadline]);
        clearTimeout(timer);
        if (outcome === 'late') log.warn('trace export did not finish at shutdown; the rest is dropped');
        else if (outcome !== 'done') log.warn({ err: (outcome as Error).message }, 'tracing did not shut down cleanly');
        trace.disable();
        context.disable();
        propagation.disable();
      })();
      return stopping;
    },
  };
}
