// The audit trail as the session manager sees it: the buffer's bounds the store's scripts append
// within, the table created at start (retried while PostgreSQL is away), the sink started after
// it, the history read, and the sink's metrics.
import type { Logger } from '../log.js';
import type { ResolvedAudit, ResolvedEvents, ResolvedOptions } from '../options.js';
import { auditPrometheus } from './metrics.js';
import { auditSinkOf, type AuditSink } from './sink.js';
import type { AuditSessionRow, HistoryQuery } from './history.js';
import { migrate } from './sql.js';
import { BUCKET_COUNT } from '../token.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * What the scripts append to: the audit's stream, the event feed's, or both; the per-stream
 * length cap, the streams' TTL and the audit's activity interval.
 */
export interface StreamBuffer {
  readonly audit: boolean;
  readonly events: boolean;
  readonly cap: number;
  readonly ttl: number;
  readonly activity: number;
}

/** A week: how long the feed's streams live while no instance reads them. */
const EVENTS_TTL = 7 * 24 * 3600_000;

/**
 * The buffers' bound, spread over the bucket streams (the larger of the two when both are on);
 * an audit stream lives as long as rows do (at most 30 days) while nothing reads it, the feed's
 * a week.
 */
export function streamBuffer(a: ResolvedAudit | undefined, e: ResolvedEvents | undefined): StreamBuffer | undefined {
  if (a === undefined && e === undefined) return undefined;
  const auditTtl = a === undefined ? 0 : Math.min(30, a.retentionDays) * 24 * 3600_000;
  return {
    audit: a !== undefined,
    events: e !== undefined,
    cap: Math.ceil(Math.max(a?.bufferEvents ?? 0, e?.bufferEvents ?? 0) / BUCKET_COUNT),
    ttl: Math.max(auditTtl, e === undefined ? 0 : EVENTS_TTL),
    activity: a?.activityInterval ?? 0,
  };
}

export class AuditTrail {
  readonly #o: ResolvedOptions;
  readonly #a: ResolvedAudit;
  readonly #log: Logger;
  readonly #sink: AuditSink;
  #closed = false;

  /** The trail of the resolved options, or undefined with the audit off. */
  static of(o: ResolvedOptions, log: Logger): AuditTrail | undefined {
    const sink = auditSinkOf(o, log);
    return sink === undefined ? undefined : new AuditTrail(o, log, sink);
  }

  private constructor(o: ResolvedOptions, log: Logger, sink: AuditSink) {
    this.#o = o;
    this.#a = o.audit!;
    this.#log = log;
    this.#sink = sink;
  }

  /**
   * The table first (PostgreSQL may be down at start: retried until it answers), then the sink.
   * Nothing waits for this: events wait in the Redis buffer meanwhile.
   */
  async start(): Promise<void> {
    const a = this.#a;
    for (let attempt = 0; a.migrate && !this.#closed; attempt++) {
      try {
        await migrate(a.pool, { schema: a.schema, table: a.table, keyPrefix: this.#o.keyPrefix });
        break;
      } catch (err) {
        if (attempt === 0) {
          this.#log.error({ err }, 'tiered-session: audit table could not be created (retrying); events wait in Redis meanwhile');
        }
        await sleep(Math.min(1000 * 2 ** attempt, 30_000));
      }
    }
    if (!this.#closed && a.consume) this.#sink.start();
  }

  /** A user's sessions live at any moment in [from, to], most recent first. */
  history(userId: string, q: HistoryQuery = {}): Promise<AuditSessionRow[]> { return this.#sink.history(userId, q); }

  /** The sink's metrics in the Prometheus text format. */
  prometheus(): string { return auditPrometheus(this.#sink.metricsSnapshot()); }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#sink.close();
  }
}
