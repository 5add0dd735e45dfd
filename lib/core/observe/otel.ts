// OpenTelemetry, through @opentelemetry/api when the app has it: spans for the Redis calls,
// and the metrics of the Prometheus text through a meter. The package never depends on it:
// the types below are the few members used, and the module is loaded only when asked for.

/** A span, as far as the package uses one. */
export interface OtelSpan {
  /** Mark the span failed (code 2, ERROR). */
  setStatus(status: { code: number }): unknown;
  /** End the span. */
  end(): void;
}

/** The members of an OpenTelemetry `Tracer` the package calls. */
export interface OtelTracer {
  /** Start a span (kind 2, CLIENT). */
  startSpan(name: string, options?: { kind?: number; attributes?: Record<string, string> }): OtelSpan;
}

/** An OpenTelemetry `TracerProvider` (`@opentelemetry/sdk-trace-base`'s, or the global one). */
export interface OtelTracerProvider {
  /** The tracer of the package (`tiered-session`). */
  getTracer(name: string, version?: string): OtelTracer;
}

/** An observable instrument: observed in a batch callback. */
export type OtelObservable = object;

/** What a batch callback observes into. */
export interface OtelBatchResult {
  /** One value of an observable instrument, with its attributes. */
  observe(instrument: OtelObservable, value: number, attributes?: Record<string, string>): void;
}

/** An OpenTelemetry histogram instrument. */
export interface OtelHistogram {
  /** Record one value, with its attributes. */
  record(value: number, attributes?: Record<string, string>): void;
}

/** The members of an OpenTelemetry `Meter` the package calls. */
export interface OtelMeter {
  /** A histogram instrument, with its bucket boundaries as advice. */
  createHistogram(name: string, options?: { description?: string; unit?: string; advice?: { explicitBucketBoundaries?: number[] } }):
    OtelHistogram;
  /** An observable counter (a counter's total, read when the meter collects). */
  createObservableCounter(name: string, options?: { description?: string; unit?: string }): OtelObservable;
  /** An observable gauge. */
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): OtelObservable;
  /** Read the observable instruments when the meter collects. */
  addBatchObservableCallback(callback: (result: OtelBatchResult) => void, observables: OtelObservable[]): void;
  /** Stop reading them (the app's close). */
  removeBatchObservableCallback(callback: (result: OtelBatchResult) => void, observables: OtelObservable[]): void;
}

/** An OpenTelemetry `MeterProvider` (`@opentelemetry/sdk-metrics`'s, or the global one). */
export interface OtelMeterProvider {
  /** The meter of the package (`tiered-session`). */
  getMeter(name: string, version?: string): OtelMeter;
}

/** The providers to use; a missing one is not used. */
export interface OpenTelemetryProviders {
  /** Spans for the Redis calls. */
  tracerProvider?: OtelTracerProvider;
  /** The metrics. */
  meterProvider?: OtelMeterProvider;
}

/** SpanKind.CLIENT and SpanStatusCode.ERROR of @opentelemetry/api (stable numbers of its API). */
const CLIENT = 2;
const ERROR = 2;
const SCOPE = 'tiered-session';

/**
 * The providers to use: the given ones, or with 'auto' the global ones of @opentelemetry/api
 * when it is installed (its tracer follows an SDK registered later; its meter is the one
 * registered when the package starts). Undefined: OpenTelemetry is not there.
 */
export async function loadProviders(setting: 'auto' | OpenTelemetryProviders): Promise<OpenTelemetryProviders | undefined> {
  if (setting !== 'auto') return setting;
  try {
    const api = (await import('@opentelemetry/api')) as unknown as {
      trace: OtelTracerProvider; metrics: OtelMeterProvider;
    };
    return { tracerProvider: api.trace, meterProvider: api.metrics };
  } catch {
    return undefined;
  }
}

/** Start a span for one Redis call: named by the operation, with no key, id or token in it. */
export function redisSpan(tracer: OtelTracer, operation: string): (err?: unknown) => void {
  const span = tracer.startSpan(`tiered-session redis ${operation}`, {
    kind: CLIENT,
    attributes: { 'db.system': 'redis', 'tiered_session.operation': operation },
  });
  return (err) => {
    if (err !== undefined) span.setStatus({ code: ERROR });
    span.end();
  };
}

export const tracerOf = (p: OtelTracerProvider): OtelTracer => p.getTracer(SCOPE);
export const meterOf = (p: OtelMeterProvider): OtelMeter => p.getMeter(SCOPE);
