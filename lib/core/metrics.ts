/** A fixed-bucket histogram (cumulative counts are computed when rendered). */
export class Histogram {
  readonly buckets: readonly number[];
  readonly counts: number[];
  count = 0;
  sum = 0;

  constructor(buckets: readonly number[]) {
    this.buckets = buckets;
    this.counts = new Array(buckets.length).fill(0);
  }

  observe(v: number): void {
    this.count++;
    this.sum += v;
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

  snapshot(l1Size: number, l1Clears: number): StatsSnapshot {
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
        p50: this.revocationLatency.quantile(0.5),
        p99: this.revocationLatency.quantile(0.99),
      },
      sessionSize: { count: this.sessionSize.count, sum: this.sessionSize.sum },
      l1Clears,
      unconfirmed: this.unconfirmed,
      channel: this.channelState,
      acknowledgement: this.acknowledgement,
    };
  }

  /** Prometheus text exposition format. */
  prometheus(l1Size: number, l1Clears: number): string {
    const out: string[] = [];
    const counter = (name: string, help: string, v: number) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`);
    };
    const gauge = (name: string, help: string, v: number) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`);
    };
    const histogram = (name: string, help: string, h: Histogram) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      let cum = 0;
      h.buckets.forEach((b, i) => { cum += h.counts[i]; out.push(`${name}_bucket{le="${b}"} ${cum}`); });
      out.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sum}`, `${name}_count ${h.count}`);
    };
    counter('tiered_session_l1_hits_total', 'Requests answered from the local cache.', this.l1Hits);
    counter('tiered_session_l1_misses_total', 'Requests with a well-formed token not in the local cache.', this.l1Misses);
    counter('tiered_session_redis_reads_total', 'Redis reads (session lookups and lists).', this.redisReads);
    counter('tiered_session_redis_writes_total', 'Redis writes (create, touch batches, updates, revocations).', this.redisWrites);
    counter('tiered_session_redis_errors_total', 'Redis calls that failed or timed out.', this.redisErrors);
    counter('tiered_session_touches_written_total', 'Last-active writes that reached a live session.', this.touchesWritten);
    counter('tiered_session_revocations_received_total', 'Session ids received on the revocation channel.', this.revocationsReceived);
    counter('tiered_session_unconfirmed_revocations_total', 'Revocations no replica confirmed in time (answered 503).', this.unconfirmed);
    counter('tiered_session_l1_clears_total', 'Times the local cache was cleared because the channel was interrupted.', l1Clears);
    gauge('tiered_session_l1_entries', 'Entries in the local cache.', l1Size);
    out.push('# HELP tiered_session_channel_state The revocation channel (1 on the current state): the local cache serves only while ' +
      'confirmed.',
      '# TYPE tiered_session_channel_state gauge');
    for (const st of ['connecting', 'confirmed', 'down', 'refused', 'off'] as const) {
      out.push(`tiered_session_channel_state{state="${st}"} ${st === this.channelState ? 1 : 0}`);
    }
    out.push('# HELP tiered_session_replica_acknowledgement Whether revocations wait for a replica (1 on the current state; unknown ' +
      'waits).',
      '# TYPE tiered_session_replica_acknowledgement gauge');
    for (const st of ['on', 'off', 'unknown'] as const) {
      out.push(`tiered_session_replica_acknowledgement{state="${st}"} ${st === this.acknowledgement ? 1 : 0}`);
    }
    histogram('tiered_session_revocation_latency_seconds', 'From publish to the local cache drop.', this.revocationLatency);
    histogram('tiered_session_size_bytes', 'Size of a stored session record.', this.sessionSize);
    return out.join('\n') + '\n';
  }
}
