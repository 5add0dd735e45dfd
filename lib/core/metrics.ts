/** A fixed-bucket histogram (cumulative counts are computed when rendered). */
export class Histogram {
  readonly buckets: readonly number[];
  readonly counts: number[];
  count = 0;
  sum = 0;
  /** Also called with each observation (the OpenTelemetry meter's instrument, when one is attached). */
  forward: ((v: number) => void) | undefined;

  constructor(buckets: readonly number[]) {
    this.buckets = buckets;
    this.counts = new Array(buckets.length).fill(0);
  }

  observe(v: number): void {
    this.count++;
    this.sum += v;
    this.forward?.(v);
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= this.buckets[i]) { this.counts[i]++; return; }
    }
  }

  /** The value below which `q` (0..1) of the observations fall, read off the buckets (upper bound). */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return this.buckets[i];
    }
    return Infinity;
  }
}

/**
 * A Redis operation timed per call (`tiered_session_redis_operation_seconds{operation}`): a read
 * (a miss, a pre-warm batch), a sign-in, a touch batch, an update, a revocation, a log out
 * everywhere, a device list, the WAIT after a sign-in that evicted.
 */
export type RedisOperation = 'read' | 'create' | 'touch' | 'update' | 'revoke' | 'revoke_all' | 'list' | 'wait';
/** Every RedisOperation, in the order the exposition lists them. */
export const REDIS_OPERATIONS: readonly RedisOperation[] = ['read', 'create', 'touch', 'update', 'revoke', 'revoke_all', 'list', 'wait'];

/** `n` buckets from `first`, each twice the last (rounded to 6 significant digits). */
export const doubling = (first: number, n: number): number[] =>
  Array.from({ length: n }, (_, k) => Number((first * 2 ** k).toPrecision(6)));

/** Redis call latency: 50 µs to 6.55 s, doubling (18 buckets). */
export const OPERATION_BUCKETS = doubling(50e-6, 18);
/** A sampled resolve: 0.5 µs (an L1 hit) to 4.19 s (a miss waiting out a slow Redis), doubling (24 buckets). */
export const RESOLVE_BUCKETS = doubling(0.5e-6, 24);
/** How far back the hit ratio and the L2 amplification look. */
export const RATE_WINDOW_MS = 60_000;

/** Count, median, 99th and 99.9th percentile of a histogram (bucket upper bounds; NaN when empty). */
export interface Quantiles {
  /** Observations. */
  count: number;
  /** Median. */
  p50: number;
  /** 99th percentile. */
  p99: number;
  /** 99.9th percentile. */
  p999: number;
}

const quantiles = (h: Histogram): Quantiles => ({ count: h.count, p50: h.quantile(0.5), p99: h.quantile(0.99), p999: h.quantile(0.999) });

/** Counters and gauges, as `stats()` returns them. */
export interface StatsSnapshot {
  /** Requests answered from the local cache. */
  l1Hits: number;
  /** Requests that had to read Redis. */
  l1Misses: number;
  /** Sessions in the local cache now. */
  l1Size: number;
  /** Redis reads (misses, pre-warm batches). */
  redisReads: number;
  /** Redis writes (sign-ins, touch batches, revocations, updates). */
  redisWrites: number;
  /** Redis calls that failed or timed out. */
  redisErrors: number;
  /** Last-active times written (throttled by `touchInterval`). */
  touchesWritten: number;
  /** Revoked ids heard on the channel from any instance. */
  revocationsReceived: number;
  /** From the revoking call to this instance dropping the id (ms): count, sum, median, p99. */
  revocationLatency: {
    /** Revocations measured. */
    count: number;
    /** Their total (ms). */
    sum: number;
    /** Median (ms). */
    p50: number;
    /** 99th percentile (ms). */
    p99: number;
    /** 99.9th percentile (ms). */
    p999: number;
  };
  /** Bytes of the sessions written at sign-in: count and sum. */
  sessionSize: {
    /** Sessions measured. */
    count: number;
    /** Their total size (bytes). */
    sum: number;
  };
  /** Times the local cache was cleared because the channel could not be trusted. */
  l1Clears: number;
  /** Revocations applied on the primary that no replica confirmed in time (answered 503). */
  unconfirmed: number;
  /** The revocation channel: the local cache serves only while it is `confirmed`. */
  channel: 'connecting' | 'confirmed' | 'down' | 'refused' | 'off';
  /** Whether revocations wait for a replica (`unknown`: replication not read yet; they wait). */
  acknowledgement: 'on' | 'off' | 'unknown';
  /** Share of resolved requests answered from the local cache over the last minute (NaN: none). */
  l1HitRatio: number;
  /** Redis reads per resolved request over the last minute (NaN: no request). */
  l2Amplification: number;
  /** Duration of each Redis operation (seconds). */
  redisLatency: Record<RedisOperation, Quantiles>;
  /** Duration of the sampled resolves (seconds). */
  resolveTime: Quantiles;
}

/** One metric family, as the exposition renders it. */
interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: [labels: string, value: number][];
}

/** A histogram family: one histogram per label set. */
export interface HistogramFamily {
  name: string;
  help: string;
  /** The label's name (`operation`) and each histogram's value of it; none: one histogram. */
  label?: string;
  series: [labelValue: string, h: Histogram][];
}

/** The plugin's counters: plain fields bumped on the hot path, rendered on demand. */
export class Metrics {
  l1Hits = 0;
  l1Misses = 0;
  redisReads = 0;
  redisWrites = 0;
  redisErrors = 0;
  touchesWritten = 0;
  revocationsReceived = 0;
  /** Revocations applied on the primary that no replica confirmed in time (answered 503). */
  unconfirmed = 0;
  channelState: StatsSnapshot['channel'] = 'off';
  acknowledgement: StatsSnapshot['acknowledgement'] = 'off';
  /** Seconds from publish to the local cache drop. */
  readonly revocationLatency = new Histogram([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);
  /** Bytes of a stored session record. */
  readonly sessionSize = new Histogram([64, 128, 256, 512, 1024, 2048, 4096, 8192]);
  /** Seconds per Redis call, by operation. */
  readonly redisOperations = Object.fromEntries(REDIS_OPERATIONS.map((op) =>
    [op, new Histogram(OPERATION_BUCKETS)])) as Record<RedisOperation, Histogram>;
  /** Seconds per sampled resolve. */
  readonly resolveTime = new Histogram(RESOLVE_BUCKETS);
  /** Time one resolve in this many (0: none). */
  sampleEvery = 64;
  /** Resolves left until the next timed one (the hot path decrements it; Infinity: never). */
  countdown = 64;
  /** Totals at moments of the last minute (oldest first): the base of the windowed ratios. */
  readonly #window: { at: number; reads: number; hits: number;
    resolved: number }[] = [{ at: performance.now(), reads: 0, hits: 0, resolved: 0 }];

  /** Time one resolve in `n` (0: none). */
  sampleResolves(n: number): void {
    this.sampleEvery = n;
    this.countdown = n === 0 ? Infinity : n;
  }

  /** The hit ratio and the L2 amplification since the oldest total kept within the window. */
  #rates(): { hitRatio: number; amplification: number } {
    const now = performance.now();
    const w = this.#window;
    const cur = { at: now, reads: this.redisReads, hits: this.l1Hits, resolved: this.l1Hits + this.l1Misses };
    if (now - w[w.length - 1].at >= 1000) w.push(cur);
    // Keep the newest total at least a window old as the base.
    while (w.length > 1 && w[1].at <= now - RATE_WINDOW_MS) w.shift();
    const base = w[0];
    const resolved = cur.resolved - base.resolved;
    return {
      hitRatio: resolved === 0 ? NaN : (cur.hits - base.hits) / resolved,
      amplification: resolved === 0 ? NaN : (cur.reads - base.reads) / resolved,
    };
  }

  snapshot(l1Size: number, l1Clears: number): StatsSnapshot {
    const rates = this.#rates();
    const ms = quantiles(this.revocationLatency);
    return {
      l1Hits: this.l1Hits,
      l1Misses: this.l1Misses,
      l1Size,
      redisReads: this.redisReads,
      redisWrites: this.redisWrites,
      redisErrors: this.redisErrors,
      touchesWritten: this.touchesWritten,
      revocationsReceived: this.revocationsReceived,
      revocationLatency: {
        count: this.revocationLatency.count,
        sum: this.revocationLatency.sum,
        p50: ms.p50,
        p99: ms.p99,
        p999: ms.p999,
      },
      sessionSize: { count: this.sessionSize.count, sum: this.sessionSize.sum },
      l1Clears,
      unconfirmed: this.unconfirmed,
      channel: this.channelState,
      acknowledgement: this.acknowledgement,
      l1HitRatio: rates.hitRatio,
      l2Amplification: rates.amplification,
      redisLatency: Object.fromEntries(REDIS_OPERATIONS.map((op) => [op, quantiles(this.redisOperations[op])])) as Record<RedisOperation,
        Quantiles>,
      resolveTime: quantiles(this.resolveTime),
    };
  }

  /** The histograms, as the exposition and the OpenTelemetry meter name them. */
  histograms(): HistogramFamily[] {
    return [
      { name: 'tiered_session_revocation_latency_seconds', help: 'From publish to the local cache drop.',
        series: [['', this.revocationLatency]] },
      { name: 'tiered_session_size_bytes', help: 'Size of a stored session record.', series: [['', this.sessionSize]] },
      {
        name: 'tiered_session_redis_operation_seconds', help: 'Duration of a Redis call, by operation (revocations include their WAIT).',
        label: 'operation', series: REDIS_OPERATIONS.map((op) => [op, this.redisOperations[op]]),
      },
      { name: 'tiered_session_resolve_seconds', help: 'Duration of a session resolve, one request in sampleEvery.',
        series: [['', this.resolveTime]] },
    ];
  }

  /** The counters and gauges. */
  #families(l1Size: number, l1Clears: number): Family[] {
    const rates = this.#rates();
    const one = (name: string, type: Family['type'], help: string, v: number): Family => ({ name, help, type, samples: [['', v]] });
    const states = (name: string, help: string, all: readonly string[], cur: string): Family =>
      ({ name, help, type: 'gauge', samples: all.map((st) => [`state="${st}"`, st === cur ? 1 : 0]) });
    return [
      one('tiered_session_l1_hits_total', 'counter', 'Requests answered from the local cache.', this.l1Hits),
      one('tiered_session_l1_misses_total', 'counter', 'Requests with a well-formed token not in the local cache.', this.l1Misses),
      one('tiered_session_redis_reads_total', 'counter', 'Redis reads (session lookups and lists).', this.redisReads),
      one('tiered_session_redis_writes_total', 'counter', 'Redis writes (create, touch batches, updates, revocations).', this.redisWrites),
      one('tiered_session_redis_errors_total', 'counter', 'Redis calls that failed or timed out.', this.redisErrors),
      one('tiered_session_touches_written_total', 'counter', 'Last-active writes that reached a live session.', this.touchesWritten),
      one('tiered_session_revocations_received_total', 'counter', 'Session ids received on the revocation channel.',
        this.revocationsReceived),
      one('tiered_session_unconfirmed_revocations_total', 'counter', 'Revocations no replica confirmed in time (answered 503).',
        this.unconfirmed),
      one('tiered_session_l1_clears_total', 'counter', 'Times the local cache was cleared because the channel was interrupted.', l1Clears),
      one('tiered_session_l1_entries', 'gauge', 'Entries in the local cache.', l1Size),
      one('tiered_session_l1_hit_ratio', 'gauge', 'Share of resolved requests answered from the local cache over the last minute.',
        rates.hitRatio),
      one('tiered_session_l2_amplification', 'gauge', 'Redis reads per resolved request over the last minute.', rates.amplification),
      states('tiered_session_channel_state',
        'The revocation channel (1 on the current state): the local cache serves only while confirmed.',
        ['connecting', 'confirmed', 'down', 'refused', 'off'], this.channelState),
      states('tiered_session_replica_acknowledgement', 'Whether revocations wait for a replica (1 on the current state; unknown waits).',
        ['on', 'off', 'unknown'], this.acknowledgement),
    ];
  }

  /** Prometheus text exposition format. */
  prometheus(l1Size: number, l1Clears: number): string {
    const out: string[] = [];
    for (const f of this.#families(l1Size, l1Clears)) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      for (const [labels, v] of f.samples) out.push(`${f.name}${labels === '' ? '' : `{${labels}}`} ${v}`);
    }
    for (const f of this.histograms()) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} histogram`);
      for (const [lv, h] of f.series) {
        const l = f.label === undefined ? '' : `${f.label}="${lv}",`;
        const tail = f.label === undefined ? '' : `{${f.label}="${lv}"}`;
        let cum = 0;
        h.buckets.forEach((b, i) => { cum += h.counts[i]; out.push(`${f.name}_bucket{${l}le="${b}"} ${cum}`); });
        out.push(`${f.name}_bucket{${l}le="+Inf"} ${h.count}`, `${f.name}_sum${tail} ${h.sum}`, `${f.name}_count${tail} ${h.count}`);
      }
    }
    return out.join('\n') + '\n';
  }
}
