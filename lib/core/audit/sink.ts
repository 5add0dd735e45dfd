// The audit sink: moves session events from the Redis streams (the durable buffer the store's
// scripts append to, atomically with each change) into the PostgreSQL table, and keeps that table
// honest. Requests never wait on any of this. Four stages: streams.ts (the Redis side),
// writer.ts (the PostgreSQL side), consumer.ts (the rounds) and maintenance.ts (sweep,
// retention); this module runs the two loops and holds the settings.
//
// Costs. One round = one XREADGROUP per stream (256), sent as one pipeline on a single Redis and
// as one pipeline per master on a Cluster. Claims (XAUTOCLAIM) and group repair run every
// claimIdle / 3; XLEN + XRANGE for the metrics every statsInterval. An idle round costs a few
// milliseconds of CPU in the app and well under one in Redis (test/integration/audit.test.ts measures it).
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { consoleLogger, type Logger } from '../log.js';
import type { Milliseconds, RedisClient, ResolvedAudit, ResolvedOptions } from '../options.js';
import { AuditConsumer } from './consumer.js';
import { AuditMaintenance } from './maintenance.js';
import { AuditMetrics, type AuditMetricsSnapshot } from './metrics.js';
import { auditHistory, type AuditSessionRow, type HistoryQuery } from './history.js';
import { auditNames, type AuditNames, type AuditTableOptions } from './sql.js';
import { AuditStreams } from './streams.js';
import { AuditWriter, type CommitHook } from './writer.js';

export { AUDIT_GROUP } from './streams.js';

/**
 * @internal The one test seam: internal settings a test shortens, a fixed consumer name, and a
 * pause around COMMIT (a test kills the process there).
 */
export interface AuditTesting {
  /** This consumer's name in the group. @default `<hostname>-<pid>-<random>` */
  consumer?: string;
  /** Entries read per stream per round (XREADGROUP COUNT), at most 1000. @default 100 */
  batchSize?: number;
  /** How long an entry may sit pending on a consumer before another one takes it over, ms. @default 30000 */
  claimIdle?: Milliseconds;
  /** The sweep's margin for clock skew between instances and Redis, ms. @default 10000 */
  sweepGrace?: Milliseconds;
  /** How often buffer depth and lag are read (XLEN, XRANGE per stream), ms. @default 5000 */
  statsInterval?: Milliseconds;
  /** Longest pause between retries while PostgreSQL or Redis is failing, ms. @default 30000 */
  maxBackoff?: Milliseconds;
  /** Bound on each PostgreSQL batch (statement_timeout, and a client-side guard), ms. @default 30000 */
  postgresTimeout?: Milliseconds;
  /** Awaited after the upsert, before COMMIT. */
  beforeCommit?: CommitHook;
  /** Awaited after COMMIT, before XACK. */
  afterCommit?: CommitHook;
}

/**
 * The settings no user option reaches. An expired session is recorded within sweepInterval +
 * sweepGrace of its expiry (plus, if the lease holder dies, the lease's TTL: 2 × sweepInterval +
 * 10 s). batchSize is at most 1000: a round carries up to 256 × batchSize events in one
 * transaction, and the ack script unpacks one stream's ids into one call (Lua's limit is ~8000).
 */
const INTERNAL = Object.freeze({
  batchSize: 100, claimIdle: 30_000, sweepGrace: 10_000, statsInterval: 5000, maxBackoff: 30_000, postgresTimeout: 30_000,
});

export interface AuditSinkOptions {
  /** The ioredis client (the app's; Redis or Cluster). */
  client: RedisClient;
  /** The plugin's keyPrefix. */
  keyPrefix: string;
  /** The resolved `audit` option (options.ts validates it). */
  audit: ResolvedAudit;
  /** The plugin's commandTimeout: bound on each Redis call (a round's pipelines together). */
  commandTimeout: Milliseconds;
  /** The longest a session can live (the absolute timeout): bounds history()'s index scan. */
  maxLifetime?: Milliseconds;
  logger?: Logger;
  now?: () => number;
  /** @internal */
  testing?: AuditTesting;
}

/** The sink of the resolved options, or undefined with the audit off. */
export function auditSinkOf(o: ResolvedOptions, logger: Logger): AuditSink | undefined {
  if (o.audit === undefined) return undefined;
  return new AuditSink({
    client: o.client, keyPrefix: o.keyPrefix, audit: o.audit, commandTimeout: o.commandTimeout, maxLifetime: o.absoluteTimeout,
    logger, now: o.now,
  });
}

export class AuditSink {
  /** This instance's consumer name in the group `audit`. */
  readonly consumer: string;
  readonly metrics = new AuditMetrics();
  readonly names: AuditNames;

  readonly #streams: AuditStreams;
  readonly #consumer: AuditConsumer;
  readonly #maintenance: AuditMaintenance;
  readonly #o: AuditSinkOptions;
  readonly #table: AuditTableOptions;
  readonly #now: () => number;
  readonly #pollInterval: number;
  readonly #sweepInterval: number;
  readonly #statsInterval: number;
  readonly #maxBackoff: number;

  #running = false;
  #loopDone: Promise<void> | undefined;
  #leaseDone: Promise<void> | undefined;
  #wakeLoop: (() => void) | undefined;
  #wakeLease: (() => void) | undefined;
  #failures = 0;
  #nextStatsAt = 0;

  constructor(options: AuditSinkOptions) {
    const o = options;
    const a = o.audit;
    const x = { ...INTERNAL, ...o.testing };
    const log = o.logger ?? consoleLogger;
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#table = { schema: a.schema, table: a.table, keyPrefix: o.keyPrefix };
    this.names = auditNames(this.#table);
    this.consumer = x.consumer ?? `${os.hostname()}-${process.pid}-${randomBytes(6).toString('base64url')}`;
    this.#pollInterval = a.pollInterval;
    this.#sweepInterval = a.sweepInterval;
    this.#statsInterval = x.statsInterval;
    this.#maxBackoff = x.maxBackoff;
    const c = { metrics: this.metrics, log, now: this.#now };
    this.#streams = new AuditStreams(c, o.client, o.keyPrefix, o.commandTimeout);
    const writer = new AuditWriter(c, {
      pool: a.pool, names: this.names, prefix: o.keyPrefix, postgresTimeout: x.postgresTimeout, beforeCommit: x.beforeCommit,
    });
    const stages = { ...c, streams: this.#streams, writer };
    this.#consumer = new AuditConsumer(stages,
      { name: this.consumer, batchSize: x.batchSize, claimIdle: x.claimIdle, afterCommit: x.afterCommit });
    this.#maintenance = new AuditMaintenance(stages, {
      name: this.consumer, prefix: o.keyPrefix, names: this.names, sweepInterval: a.sweepInterval, sweepGrace: x.sweepGrace,
      retentionDays: a.retentionDays, reapIdle: Math.max(3_600_000, 10 * x.claimIdle),
    });
  }

  /** Start consuming (and competing for the sweep lease). Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loopDone = this.#loop();
    this.#leaseDone = this.#leaseLoop();
  }

  /**
   * Stop: finish the round in flight (bounded by the timeouts), release the lease, and leave the
   * group if nothing is pending on this consumer. Entries it could not apply stay pending and are
   * claimed by another instance after claimIdle.
   */
  async close(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wakeLoop?.();
    this.#wakeLease?.();
    await this.#loopDone;
    await this.#leaseDone;
    if (!this.#streams.ready) return;
    try {
      await this.#maintenance.release();
      await this.#streams.reap(0, this.consumer);
    } catch { /* best effort: a consumer left behind is reaped by the lease holder later */ }
  }

  /** The user's sessions live at some moment of [from, to], most recent first (see sql.ts). */
  history(userId: string, q: HistoryQuery = {}): Promise<AuditSessionRow[]> {
    return auditHistory(this.#o.audit.pool, this.#table, userId, q, this.#o.maxLifetime);
  }

  metricsSnapshot(): AuditMetricsSnapshot { return this.metrics.snapshot(); }

  /** One round of the consumer (tests and tools; never while the sink is started). */
  pollOnce(): Promise<boolean> { return this.#consumer.round(); }
  /** Read buffer depth and lag now. */
  refreshStats(): Promise<AuditMetricsSnapshot> { return this.#consumer.refreshStats(); }
  /** One expiry sweep now (tests; the lease holder runs it every sweepInterval). */
  sweep(): Promise<{ expired: number; extended: number }> { return this.#maintenance.sweep(); }
  /** Retention now (tests; the lease holder runs it with the sweep). */
  retain(): Promise<number> { return this.#maintenance.retain(); }

  async #loop(): Promise<void> {
    while (this.#running) {
      let more = false;
      try {
        more = await this.#consumer.round();
        this.#failures = 0;
      } catch {
        this.#failures++;
      }
      if (!this.#running) break;
      const now = this.#now();
      if (now >= this.#nextStatsAt) {
        this.#nextStatsAt = now + this.#statsInterval;
        await this.#consumer.refreshStats().catch(() => {});
      }
      if (more && this.#failures === 0) continue;
      const poll = this.#pollInterval;
      const base = this.#failures === 0 ? poll : Math.min(this.#maxBackoff, poll * 2 ** Math.min(this.#failures - 1, 16));
      // Jitter on retries, so that instances do not retry in step; never above maxBackoff.
      await this.#sleep(this.#failures === 0 ? base : Math.min(this.#maxBackoff, base * (0.8 + 0.4 * Math.random())), 'loop');
    }
  }

  async #leaseLoop(): Promise<void> {
    // A first attempt soon after start, then every sweepInterval.
    await this.#sleep(Math.min(1000, this.#sweepInterval), 'lease');
    while (this.#running) {
      try {
        await this.#maintenance.run();
      } catch { /* logged by the up/down state */ }
      if (!this.#running) break;
      await this.#sleep(this.#sweepInterval, 'lease');
    }
  }

  #sleep(ms: number, which: 'loop' | 'lease'): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done() { clearTimeout(timer); resolve(); }
      if (which === 'loop') this.#wakeLoop = done; else this.#wakeLease = done;
    });
  }
}
