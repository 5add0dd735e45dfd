import type { Metrics, RedisOperation } from '../metrics.js';
import type { RedisObserver } from '../store/call.js';
import { parseExposition } from './exposition.js';
import {
  loadProviders, meterOf, redisSpan, tracerOf, type OpenTelemetryProviders, type OtelBatchResult, type OtelMeter, type OtelObservable,
  type OtelTracer,
} from './otel.js';

/** The `telemetry` option, resolved. */
export interface ResolvedTelemetry {
  readonly sampleEvery: number;
  readonly redisTimings: boolean;
  readonly openTelemetry: false | 'auto' | OpenTelemetryProviders;
}

/** The store's name of a call → the operation it is timed as (calls not listed are not timed). */
const OPERATION_OF: Readonly<Record<string, RedisOperation>> = Object.assign(Object.create(null) as Record<string, RedisOperation>, {
  HGETALL: 'read', read: 'read', create: 'create', touch: 'touch', update: 'update', revoke: 'revoke', revokeAll: 'revoke_all',
  list: 'list', WAIT: 'wait',
});

const UNITS: Record<string, string> = { seconds: 's', bytes: 'By' };

/**
 * The timings beside the counters: each Redis call per operation (histogram, and an
 * OpenTelemetry span when a tracer is there), and the OpenTelemetry meter that serves the same
 * metrics as the Prometheus text. The sampled resolve is timed by the flows (the hot path).
 */
export class Telemetry implements RedisObserver {
  readonly #m: Metrics;
  readonly #o: ResolvedTelemetry;
  /** The whole Prometheus text (the plugin's and the audit sink's). */
  readonly #text: () => string;
  #tracer: OtelTracer | undefined;
  #meter: { meter: OtelMeter; callback: (r: OtelBatchResult) => void; observables: OtelObservable[] } | undefined;
  #closed = false;

  constructor(metrics: Metrics, o: ResolvedTelemetry, text: () => string) {
    this.#m = metrics;
    this.#o = o;
    this.#text = text;
    metrics.sampleResolves(o.sampleEvery);
  }

  begin(what: string): ((err?: unknown) => void) | undefined {
    const op = OPERATION_OF[what];
    const tracer = this.#tracer;
    if (op === undefined || (!this.#o.redisTimings && tracer === undefined)) return undefined;
    const h = this.#o.redisTimings ? this.#m.redisOperations[op] : undefined;
    const t0 = h === undefined ? 0 : performance.now();
    const span = tracer === undefined ? undefined : redisSpan(tracer, op);
    return (err) => {
      h?.observe((performance.now() - t0) / 1000);
      span?.(err);
    };
  }

  /** Find OpenTelemetry (when asked for) and attach the tracer and the meter. */
  async start(): Promise<void> {
    if (this.#o.openTelemetry === false) return;
    const p = await loadProviders(this.#o.openTelemetry);
    if (p === undefined || this.#closed) return;
    if (p.tracerProvider !== undefined) this.#tracer = tracerOf(p.tracerProvider);
    if (p.meterProvider !== undefined) this.#attachMeter(meterOf(p.meterProvider));
  }

  /**
   * Counters and gauges as observable instruments read from the Prometheus text when the meter
   * collects (a counter's name without `_total`, labels as attributes); each histogram as a
   * histogram instrument with the same buckets, recorded as it observes.
   */
  #attachMeter(meter: OtelMeter): void {
    const instruments = new Map<string, OtelObservable>();
    for (const f of parseExposition(this.#text())) {
      if (f.type === 'histogram') continue;
      const name = f.type === 'counter' ? f.name.replace(/_total$/, '') : f.name;
      instruments.set(f.name, f.type === 'counter'
        ? meter.createObservableCounter(name, { description: f.help })
        : meter.createObservableGauge(name, { description: f.help }));
    }
    const callback = (r: OtelBatchResult) => {
      for (const f of parseExposition(this.#text())) {
        const inst = instruments.get(f.name);
        if (inst === undefined) continue;
        for (const s of f.samples) if (!Number.isNaN(s.value)) r.observe(inst, s.value, s.labels);
      }
    };
    const observables = [...instruments.values()];
    meter.addBatchObservableCallback(callback, observables);
    this.#meter = { meter, callback, observables };
    for (const f of this.#m.histograms()) {
      const unit = UNITS[f.name.slice(f.name.lastIndexOf('_') + 1)];
      const inst = meter.createHistogram(f.name,
        { description: f.help, unit, advice: { explicitBucketBoundaries: [...f.series[0][1].buckets] } });
      for (const [lv, h] of f.series) {
        const attributes = f.label === undefined ? undefined : { [f.label]: lv };
        h.forward = (v) => inst.record(v, attributes);
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#tracer = undefined;
    const m = this.#meter;
    if (m !== undefined) m.meter.removeBatchObservableCallback(m.callback, m.observables);
    this.#meter = undefined;
    for (const f of this.#m.histograms()) for (const [, h] of f.series) h.forward = undefined;
  }
}
