// The audit sink: moves session events from the Redis streams (the durable buffer the Lua scripts
// append to, atomically with each change) into the PostgreSQL table, and keeps that table honest
// (expiry sweep, retention). Requests never wait on any of this.
//
// Delivery. Every instance is a consumer (random name) of the group `audit` on each of the 256
// bucket streams `<prefix>{<bucket>}o`. A round reads, per stream, this consumer's own pending
// entries (cursor '0': after a failed batch, a lost reply, or a claim) or else new ones (cursor
// '>'); merges the events per session; applies them in ONE transaction (a multi-row upsert, see
// sql.ts); and only after COMMIT acknowledges and deletes the entries (XACK + XDEL in one script,
// so the stream's length is the buffer's depth). A failure anywhere leaves the entries pending:
// they are read again ('0') and applied again. A consumer that dies leaves its entries pending;
// once idle for `claimIdle` another instance takes them over (XAUTOCLAIM) and applies them. The
// table's merge is idempotent and order-insensitive, so an event applied twice, or two events of
// one session applied concurrently by two sinks in either order, give the same row: exactly-once
// in effect, by construction.
//
// Costs. One round = one XREADGROUP per stream (256), sent as one pipeline on a single Redis and
// as one pipeline per master on a Cluster (bucket i is slot i × 64; the streams are grouped by
// the node serving that slot). Claims (XAUTOCLAIM) and group repair run every claimIdle / 3;
// XLEN + XRANGE for the metrics every statsInterval. Measured (test/audit.test.ts, 2-core shared
// machine, 2026-11-26): an idle round over 256 existing streams costs 3.4-4.7 ms of CPU in the
// sink's process and ~0.3-0.5 ms of Redis process CPU (0.45 µs per XREADGROUP inside Redis); at
// the default pollInterval of 1 s that is ~0.4 % of a core per app instance and ~0.05 % of a
// Redis core per instance. One sink applies ~13 000-36 000 buffered events/s.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Redis, Cluster, ChainableCommander } from 'ioredis';
import { consoleLogger, type Logger } from '../log.js';
import { BUCKETS, BUCKET_LENGTH } from '../token.js';
import { parseEvent, mergeEvents, type AuditEvent } from './events.js';
import { AuditMetrics, type AuditMetricsSnapshot } from './metrics.js';
import {
  auditNames, auditHistory, upsertSql, upsertParams, sweepSelectSql, sweepExpireSql, sweepExtendSql, retentionSql,
  type AuditNames, type AuditPool, type AuditPoolClient, type AuditQueryResult, type AuditSessionRow, type AuditTableOptions, type HistoryQuery,
  type SessionDelta,
} from './sql.js';
import { ERR_INVALID_OPTION } from '../errors.js';

/** The consumer group every script creates with its stream (at id 0). */
export const AUDIT_GROUP = 'audit';

/** `<prefix>{<bucket>}o`: the audit stream of one bucket (same slot as the bucket's users' keys). */
export const auditStreamKey = (keyPrefix: string, bucket: string) => `${keyPrefix}{${bucket}}o`;
/** `<prefix>audit:lease`: who runs the sweep and retention. */
export const auditLeaseKey = (keyPrefix: string) => `${keyPrefix}audit:lease`;
/** The Redis key of a session, as RedisStore names it: `<prefix>{<bucket>}<user19><random16>`. */
export const sessionKeyOf = (keyPrefix: string, publicId: string) =>
  `${keyPrefix}{${publicId.slice(0, BUCKET_LENGTH)}}${publicId.slice(BUCKET_LENGTH)}`;

export type RedisClient = Redis | Cluster;

export interface AuditSinkOptions extends AuditTableOptions {
  /** The ioredis client (the app's; Redis or Cluster). */
  client: RedisClient;
  /** The plugin's keyPrefix. */
  keyPrefix: string;
  /** A pg.Pool (anything with query() and connect()). Give it an 'error' listener: pg requires one. */
  pool: AuditPool;
  logger?: Logger;
  /** Counters to bump (share one object with the plugin's metrics); default a new one. */
  metrics?: AuditMetrics;
  /** Pause between rounds when there was nothing more to read, ms. Default 1000. */
  pollInterval?: number;
  /** Entries read per stream per round (XREADGROUP COUNT), 1..1000. Default 100 (a round carries at most 256 × this). */
  batchSize?: number;
  /** How long an entry may sit pending on a consumer before another one takes it over, ms. Default 30 000. */
  claimIdle?: number;
  /** How often the lease holder sweeps expired sessions and applies retention, ms. Default 60 000. */
  sweepInterval?: number;
  /**
   * The sweep's margin for clock skew between instances and Redis, ms. Default 10 000. An expired
   * session is recorded within sweepInterval + sweepGrace of its expiry (plus, if the lease
   * holder dies, the lease's TTL: 2 × sweepInterval + 10 s).
   */
  sweepGrace?: number;
  /** Rows ended more than this many days ago are deleted. Default 90. Keep it above the streams' TTL (30 days). */
  retentionDays?: number;
  /**
   * Documentation only (the scripts use it): last_active_at (and with it expires_at) is kept
   * current within this interval, ms. Default 15 minutes. Reported in metrics/logs, never enforced here.
   */
  activityInterval?: number;
  /** The longest a session can live (the absolute timeout), ms: bounds history()'s index scan. Default none. */
  maxLifetime?: number;
  /** Bound on each Redis call (a round's pipelines together), ms. Default 2000. */
  commandTimeout?: number;
  /** Bound on each PostgreSQL batch (statement_timeout, and a client-side guard), ms. Default 30 000. */
  postgresTimeout?: number;
  /** Longest pause between retries while PostgreSQL or Redis is failing, ms. Default 30 000. */
  maxBackoff?: number;
  /** How often buffer depth and lag are read (XLEN, XRANGE per stream), ms. Default 5000. */
  statsInterval?: number;
  /** This consumer's name in the group. Default `<hostname>-<pid>-<random>`. */
  consumer?: string;
  now?: () => number;
  /** @internal Test hook: awaited after the upsert, before COMMIT. */
  beforeCommit?: (events: number) => Promise<void> | void;
  /** @internal Test hook: awaited after COMMIT, before XACK. */
  afterCommit?: (events: number) => Promise<void> | void;
}

interface StreamState {
  readonly bucket: string;
  readonly key: string;
  readonly slot: number;
  /** '0': this consumer's pending entries come first; '>': new entries. */
  cursor: '0' | '>';
  /** The last read said NOGROUP: the stream does not exist (or lost its group). */
  absent: boolean;
  /** XAUTOCLAIM's cursor. */
  claimCursor: string;
}

interface ReadEntry {
  st: StreamState;
  id: string;
  ev: AuditEvent | null;
  /** Pending, but deleted from the stream. */
  lost: boolean;
}

type Loose = Record<string, (...args: (string | number)[]) => unknown>;
type Reply = [Error | null, unknown];

const MAX_SWEEP_BATCHES = 20;
const MAX_RETENTION_BATCHES = 50;
const SWEEP_BATCH = 500;
const RETENTION_BATCH = 1000;
const DAY = 86_400_000;

/** XACK then XDEL, atomically: an entry is never acknowledged but left in the stream. */
const ACK = `
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return n`;

/** Take or keep the lease: 1 when ARGV[1] holds it for ARGV[2] ms now. */
const LEASE = `
local cur = redis.call('GET', KEYS[1])
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Forget consumers of the group with nothing pending: ARGV[3] ~= '' → only that one (this
 * instance at close); else every other one idle for more than ARGV[2] ms (instances long gone).
 * Atomic, so a consumer cannot receive an entry between the check and its removal (removing a
 * consumer drops its pending entries from the group).
 */
const REAP = `
local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(cs) ~= 'table' or cs.err then return 0 end
local removed = 0
for _, c in ipairs(cs) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  local mine = ARGV[3] ~= '' and f['name'] == ARGV[3]
  local stale = ARGV[3] == '' and f['idle'] > tonumber(ARGV[2])
  if f['pending'] == 0 and (mine or stale) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed`;

const COMMANDS: [string, number, string][] = [
  ['tieredSessionAuditAck', 1, ACK],
  ['tieredSessionAuditLease', 1, LEASE],
  ['tieredSessionAuditRelease', 1, RELEASE],
  ['tieredSessionAuditReap', 1, REAP],
];

const isNoGroup = (err: unknown) => err instanceof Error && err.message.startsWith('NOGROUP');
const isRetryablePg = (err: unknown) => {
  const code = (err as { code?: unknown })?.code;
  return code === '40P01' || code === '40001';
};

function positive(name: string, v: number | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new ERR_INVALID_OPTION(name, `expected a number >= ${min}`);
  return v;
}

/** A Redis failure of the sink's own (the client's status, a timeout, a reply error). */
class RedisCallError extends Error {
  constructor(what: string, cause: unknown) {
    super(`redis ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export class AuditSink {
  /** This instance's consumer name in the group `audit`. */
  readonly consumer: string;
  readonly metrics: AuditMetrics;
  readonly names: AuditNames;
  readonly activityInterval: number;

  readonly #client: RedisClient;
  readonly #loose: Loose;
  readonly #prefix: string;
  readonly #pool: AuditPool;
  readonly #log: Logger;
  readonly #isCluster: boolean;
  readonly #streams: StreamState[];
  readonly #slotOfBucket = new Map<string, number>();
  readonly #now: () => number;
  readonly #o: {
    pollInterval: number; batchSize: number; claimIdle: number; sweepInterval: number; sweepGrace: number;
    retentionDays: number; commandTimeout: number; postgresTimeout: number; maxBackoff: number;
    statsInterval: number; maxLifetime: number | undefined; leaseTtl: number; reapIdle: number;
  };
  readonly #table: AuditTableOptions;
  readonly #beforeCommit: AuditSinkOptions['beforeCommit'];
  readonly #afterCommit: AuditSinkOptions['afterCommit'];

  #running = false;
  #loopDone: Promise<void> | undefined;
  #leaseDone: Promise<void> | undefined;
  #wakeLoop: (() => void) | undefined;
  #wakeLease: (() => void) | undefined;
  #failures = 0;
  #nextClaimAt = 0;
  #nextStatsAt = 0;
  #everReady = false;
  #pgDownSince = 0;
  #redisDownSince = 0;
  #sweepCount = 0;

  constructor(options: AuditSinkOptions) {
    const o = options;
    if (!o || typeof o !== 'object') throw new ERR_INVALID_OPTION('audit', 'expected an options object');
    if (!o.client || typeof (o.client as { pipeline?: unknown }).pipeline !== 'function') {
      throw new ERR_INVALID_OPTION('client', 'expected an ioredis Redis or Cluster client');
    }
    if (typeof o.keyPrefix !== 'string') throw new ERR_INVALID_OPTION('keyPrefix', 'expected a string');
    if (!o.pool || typeof o.pool.query !== 'function' || typeof o.pool.connect !== 'function') {
      throw new ERR_INVALID_OPTION('pool', 'expected a pg.Pool (query() and connect())');
    }
    if (o.batchSize !== undefined && o.batchSize > 1000) throw new ERR_INVALID_OPTION('batchSize', 'expected a number from 1 to 1000');
    this.names = auditNames(o);
    this.#table = { schema: o.schema, table: o.table, keyPrefix: o.keyPrefix };
    const sweepInterval = positive('sweepInterval', o.sweepInterval, 60_000, 100);
    const claimIdle = positive('claimIdle', o.claimIdle, 30_000, 100);
    this.#o = {
      pollInterval: positive('pollInterval', o.pollInterval, 1000),
      // At most 1000: a round carries up to 256 × batchSize events in one transaction, and the
      // ack script unpacks one stream's ids into one call (Lua's limit is ~8000).
      batchSize: Math.floor(positive('batchSize', o.batchSize, 100)),
      claimIdle,
      sweepInterval,
      sweepGrace: positive('sweepGrace', o.sweepGrace, 10_000, 0),
      retentionDays: positive('retentionDays', o.retentionDays, 90, 0),
      commandTimeout: positive('commandTimeout', o.commandTimeout, 2000),
      postgresTimeout: positive('postgresTimeout', o.postgresTimeout, 30_000),
      maxBackoff: positive('maxBackoff', o.maxBackoff, 30_000),
      statsInterval: positive('statsInterval', o.statsInterval, 5000),
      maxLifetime: o.maxLifetime === undefined ? undefined : positive('maxLifetime', o.maxLifetime, 0),
      leaseTtl: 2 * sweepInterval + 10_000,
      reapIdle: Math.max(3_600_000, 10 * claimIdle),
    };
    this.activityInterval = positive('activityInterval', o.activityInterval, 15 * 60_000);
    this.#client = o.client;
    this.#loose = o.client as unknown as Loose;
    this.#prefix = o.keyPrefix;
    this.#pool = o.pool;
    this.#log = o.logger ?? consoleLogger;
    this.metrics = o.metrics ?? new AuditMetrics();
    this.#now = o.now ?? Date.now;
    this.consumer = o.consumer ?? `${os.hostname()}-${process.pid}-${randomBytes(6).toString('base64url')}`;
    this.#beforeCommit = o.beforeCommit;
    this.#afterCommit = o.afterCommit;
    this.#isCluster = (o.client as Cluster).isCluster === true;
    this.#streams = BUCKETS.map((bucket, i) => {
      this.#slotOfBucket.set(bucket, i * 64);
      return { bucket, key: auditStreamKey(o.keyPrefix, bucket), slot: i * 64, cursor: '0' as const, absent: false, claimCursor: '0-0' };
    });
    for (const [name, numberOfKeys, lua] of COMMANDS) {
      if (typeof this.#loose[name] !== 'function') o.client.defineCommand(name, { numberOfKeys, lua });
    }
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
    if (this.#client.status !== 'ready') return;
    try {
      if (this.metrics.leaseHeld) {
        await this.#redis('lease release', () => this.#loose.tieredSessionAuditRelease(auditLeaseKey(this.#prefix), this.consumer) as Promise<unknown>);
        this.metrics.leaseHeld = false;
      }
      await this.#perStream('reap', this.#streams.filter((s) => !s.absent), (p, st) => {
        (p as unknown as Loose).tieredSessionAuditReap(st.key, AUDIT_GROUP, 0, this.consumer);
      });
    } catch { /* best effort: a consumer left behind is reaped by the lease holder later */ }
  }

  /** The user's sessions live at some moment of [from, to], most recent first (see sql.ts). */
  history(userId: string, q: HistoryQuery = {}): Promise<AuditSessionRow[]> {
    return auditHistory(this.#pool, this.#table, userId, q, this.#o.maxLifetime);
  }

  metricsSnapshot(): AuditMetricsSnapshot { return this.metrics.snapshot(); }

  // ------------------------------------------------------------------------------------------
  // The consumer loop.

  async #loop(): Promise<void> {
    while (this.#running) {
      let more = false;
      try {
        more = await this.pollOnce();
        this.#failures = 0;
      } catch {
        this.#failures++;
      }
      if (!this.#running) break;
      const now = this.#now();
      if (now >= this.#nextStatsAt) {
        this.#nextStatsAt = now + this.#o.statsInterval;
        await this.refreshStats().catch(() => {});
      }
      if (more && this.#failures === 0) continue;
      const base = this.#failures === 0 ? this.#o.pollInterval
        : Math.min(this.#o.maxBackoff, this.#o.pollInterval * 2 ** Math.min(this.#failures - 1, 16));
      // Jitter on retries, so that instances do not retry in step; never above maxBackoff.
      await this.#sleep(this.#failures === 0 ? base : Math.min(this.#o.maxBackoff, base * (0.8 + 0.4 * Math.random())), 'loop');
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

  /**
   * One round: claims (when due), one read per stream, one transaction, then the acks.
   * Answers whether a stream had more to read. Throws after logging when PostgreSQL or Redis failed.
   * Public for tests and tools; the loop calls it (never call it while the sink is started).
   */
  async pollOnce(): Promise<boolean> {
    if (this.#client.status !== 'ready' && !this.#everReady) return false; // still connecting at startup: not an outage
    const now = this.#now();
    if (this.#pgDownSince === 0 && now >= this.#nextClaimAt) {
      const again = await this.#claim();
      this.#nextClaimAt = again ? 0 : now + Math.max(100, Math.floor(this.#o.claimIdle / 3));
    }
    const batch = this.#o.batchSize;
    const replies = await this.#perStream('XREADGROUP', this.#streams, (p, st) => {
      (p as unknown as Loose).xreadgroup('GROUP', AUDIT_GROUP, this.consumer, 'COUNT', batch, 'STREAMS', st.key, st.cursor);
    });
    let more = false;
    let redisError: unknown;
    const entries: ReadEntry[] = [];
    const drained: StreamState[] = [];
    for (const [st, [err, reply]] of replies) {
      if (err) {
        if (isNoGroup(err)) { st.absent = true; continue; }
        redisError ??= err;
        st.cursor = '0'; // the reply may have been lost after the entries were delivered to us
        continue;
      }
      st.absent = false;
      const list = ((reply as [string, [string, string[] | null][]][] | null)?.[0]?.[1]) ?? [];
      if (list.length >= batch) more = true;
      else if (st.cursor === '0') drained.push(st);
      for (const [id, fields] of list) {
        // null fields: pending but deleted from the stream (trimmed by the cap before anyone
        // applied it). Not an event either way: acknowledged with the batch, counted then.
        entries.push({ st, id, ev: fields === null ? null : parseEvent(fields), lost: fields === null });
      }
    }
    if (redisError !== undefined && entries.length === 0) throw this.#redisDown(redisError);
    if (entries.length === 0) {
      if (redisError === undefined) this.#redisUp();
      for (const st of drained) st.cursor = '>';
      if (this.#pgDownSince !== 0) await this.#probePostgres();
      // A stream that had nothing pending reads new entries in the next round, at once.
      return more || drained.length > 0;
    }
    const events = entries.filter((e) => e.ev !== null).map((e) => e.ev!);
    const touched = new Set(entries.map((e) => e.st));
    if (events.length > 0) {
      try {
        await this.#apply(mergeEvents(events), events.length);
        this.#pgUp();
      } catch (err) {
        this.metrics.batchFailures++;
        for (const st of touched) st.cursor = '0';
        throw this.#pgDown(err);
      }
      if (this.#afterCommit) await this.#afterCommit(events.length);
    }
    // Acknowledge and delete, per stream.
    const per = new Map<StreamState, { ids: string[]; applied: number; invalid: number; lost: number }>();
    for (const e of entries) {
      let g = per.get(e.st);
      if (!g) per.set(e.st, (g = { ids: [], applied: 0, invalid: 0, lost: 0 }));
      g.ids.push(e.id);
      if (e.ev !== null) g.applied++; else if (e.lost) g.lost++; else g.invalid++;
    }
    const acks = await this.#perStream('XACK', [...per.keys()], (p, st) => {
      (p as unknown as Loose).tieredSessionAuditAck(st.key, AUDIT_GROUP, ...per.get(st)!.ids);
    });
    let ackError: unknown;
    let lost = 0;
    for (const [st, [err]] of acks) {
      if (err) { ackError ??= err; st.cursor = '0'; continue; }
      const g = per.get(st)!;
      this.metrics.eventsApplied += g.applied;
      this.metrics.eventsInvalid += g.invalid;
      this.metrics.eventsLost += g.lost;
      lost += g.lost;
    }
    if (lost > 0) this.#log.warn({ entries: lost }, 'tiered-session: audit sink: pending events were trimmed from their stream before being applied (the per-stream cap is too small for the backlog)');
    for (const st of drained) if (st.cursor === '0' && !acks.get(st)?.[0]) st.cursor = '>';
    if (events.length > 0) this.metrics.batches++;
    const failure = redisError ?? ackError;
    if (failure !== undefined) throw this.#redisDown(failure);
    this.#redisUp();
    // A stream that just finished its pending entries has new ones to read at once.
    return more || drained.length > 0;
  }

  /**
   * Take over entries idle longer than claimIdle (a consumer that died), and give lost groups
   * back to streams that exist without one. Claimed entries are read with the next '0' read.
   * Answers whether some stream has more to claim.
   */
  async #claim(): Promise<boolean> {
    const present = this.#streams.filter((s) => !s.absent);
    const absent = this.#streams.filter((s) => s.absent);
    let again = false;
    const claims = await this.#perStream('XAUTOCLAIM', present, (p, st) => {
      (p as unknown as Loose).xautoclaim(st.key, AUDIT_GROUP, this.consumer, this.#o.claimIdle, st.claimCursor, 'COUNT', this.#o.batchSize, 'JUSTID');
    });
    for (const [st, [err, reply]] of claims) {
      if (err) { if (isNoGroup(err)) st.absent = true; continue; }
      const [next, claimed, deleted] = reply as [string, string[], string[]?];
      st.claimCursor = next;
      if (next !== '0-0') again = true;
      if (claimed.length > 0) {
        st.cursor = '0';
        this.metrics.eventsClaimed += claimed.length;
        this.#log.info({ stream: st.key, entries: claimed.length }, 'tiered-session: audit sink: took over entries left pending by a stopped consumer');
      }
      if (deleted && deleted.length > 0) {
        this.metrics.eventsLost += deleted.length;
        this.#log.warn({ stream: st.key, entries: deleted.length }, 'tiered-session: audit sink: pending events were trimmed from their stream before being applied (the per-stream cap is too small for the backlog)');
      }
    }
    // A stream that exists without the group (it expired and something recreated it): the
    // group again, at 0, never MKSTREAM (only the scripts create streams, with their TTL).
    if (absent.length > 0) {
      const made = await this.#perStream('XGROUP', absent, (p, st) => {
        (p as unknown as Loose).xgroup('CREATE', st.key, AUDIT_GROUP, '0');
      });
      for (const [st, [err]] of made) {
        if (!err || /BUSYGROUP/.test(err.message)) {
          st.absent = false;
          st.cursor = '0';
          if (!err) this.#log.warn({ stream: st.key }, 'tiered-session: audit sink: stream had no consumer group; created it at 0');
        }
      }
    }
    return again;
  }

  /** The batch, in one transaction: BEGIN, statement_timeout, the upsert, COMMIT. */
  async #apply(deltas: SessionDelta[], events: number): Promise<void> {
    const sql = upsertSql(this.names);
    const params = upsertParams(deltas, this.#prefix);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#transaction(async (c) => {
          await c.query(sql, params);
          if (this.#beforeCommit) await this.#beforeCommit(events);
        });
        return;
      } catch (err) {
        // Deadlock or serialization failure: nothing was written; try again at once (the rows
        // go in id order, so two sinks do not deadlock each other; something else might).
        if (attempt < 3 && isRetryablePg(err)) continue;
        throw err;
      }
    }
  }

  /**
   * Run `fn` in a transaction on a pooled client, bounded by postgresTimeout on both sides:
   * statement_timeout in the server, and a client-side guard that destroys the connection (so
   * the server rolls back) if the server does not answer at all.
   */
  async #transaction<T>(fn: (c: AuditPoolClient) => Promise<T>): Promise<T> {
    const limit = this.#o.postgresTimeout;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let client: AuditPoolClient | undefined;
    let released = false;
    const release = (destroy: boolean) => {
      if (client && !released) {
        released = true;
        client.removeListener?.('error', onError);
        client.release(destroy);
      }
    };
    const onError = () => { /* the query in flight fails too; handled there */ };
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        release(true);
        reject(new Error(`PostgreSQL did not answer within ${limit} ms`));
      }, limit + 1000);
      timer.unref();
    });
    const work = (async (): Promise<T> => {
      const c = await this.#pool.connect();
      if (timedOut) { c.release(true); throw new Error('PostgreSQL connection came too late'); }
      client = c;
      // A checked-out pg client has no 'error' listener: a connection dying between two queries
      // would otherwise crash the process.
      c.on?.('error', onError);
      let ok = false;
      try {
        await c.query('BEGIN');
        await c.query("SELECT set_config('statement_timeout', $1, true)", [String(limit)]);
        const v = await fn(c);
        await c.query('COMMIT');
        ok = true;
        return v;
      } finally {
        if (!ok && !timedOut) await c.query('ROLLBACK').catch(() => {});
        release(!ok);
      }
    })();
    try {
      return await Promise.race([work, guard]);
    } finally {
      clearTimeout(timer);
      work.catch(() => {});
    }
  }

  async #probePostgres(): Promise<void> {
    try {
      await this.#transaction(async (c) => { await c.query('SELECT 1'); });
      this.#pgUp();
    } catch { /* still down */ }
  }

  #pgDown(err: unknown): unknown {
    this.metrics.postgresUp = false;
    if (this.#pgDownSince === 0) {
      this.#pgDownSince = this.#now();
      this.#log.error({ err, table: this.names.display },
        'tiered-session: audit sink: PostgreSQL unavailable; events stay buffered in the Redis streams and are retried with backoff');
    }
    return err;
  }

  #pgUp(): void {
    this.metrics.postgresUp = true;
    if (this.#pgDownSince !== 0) {
      this.#log.info({ downMs: this.#now() - this.#pgDownSince, table: this.names.display },
        'tiered-session: audit sink: PostgreSQL reachable again; applying the buffered events');
      this.#pgDownSince = 0;
    }
  }

  #redisDown(err: unknown): unknown {
    this.metrics.redisUp = false;
    if (this.#redisDownSince === 0) {
      this.#redisDownSince = this.#now();
      this.#log.error({ err }, 'tiered-session: audit sink: Redis unavailable; retrying with backoff');
    }
    return err;
  }

  #redisUp(): void {
    this.metrics.redisUp = true;
    if (this.#redisDownSince !== 0) {
      this.#log.info({ downMs: this.#now() - this.#redisDownSince }, 'tiered-session: audit sink: Redis reachable again');
      this.#redisDownSince = 0;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Redis plumbing.

  /** One Redis call under commandTimeout, refused at once while the client is not ready. */
  async #redis<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#client.status !== 'ready') throw new RedisCallError(what, new Error(`client is ${this.#client.status}`));
    this.#everReady = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${this.#o.commandTimeout} ms`)), this.#o.commandTimeout);
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      throw err instanceof RedisCallError ? err : new RedisCallError(what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One command per item, as few round trips as the topology allows: one pipeline on a single
   * Redis; on a Cluster one pipeline per master (items grouped by the node serving their slot;
   * ioredis requires a pipeline's keys to share a node). The whole call is bounded by
   * commandTimeout; a pipeline that fails or times out answers its error for each of its items.
   */
  async #perStream<T extends { slot: number }>(what: string, items: T[], add: (p: ChainableCommander, item: T) => void): Promise<Map<T, Reply>>;
  async #perStream<T extends { slot: number }>(what: string, items: T[], add: (p: ChainableCommander, item: T) => void, per: number): Promise<Map<T, Reply[]>>;
  async #perStream<T extends { slot: number }>(what: string, items: T[], add: (p: ChainableCommander, item: T) => void, per?: number): Promise<Map<T, Reply | Reply[]>> {
    const out = new Map<T, Reply | Reply[]>();
    const k = per ?? 1;
    if (items.length === 0) return out;
    const groups = new Map<string, T[]>();
    if (!this.#isCluster) groups.set('', items);
    else {
      const slots = (this.#client as unknown as { slots?: string[][] }).slots;
      for (const it of items) {
        const node = slots?.[it.slot]?.join(';') ?? `?${it.slot}`;
        const g = groups.get(node);
        if (g) g.push(it); else groups.set(node, [it]);
      }
    }
    const one = (res: Reply[] | null | undefined, i: number): Reply => res?.[i] ?? [new Error('no reply'), null];
    await Promise.all([...groups.values()].map(async (group) => {
      let res: Reply[] | null | undefined;
      try {
        res = (await this.#redis(what, () => {
          const p = this.#client.pipeline();
          for (const it of group) add(p, it);
          return p.exec();
        })) as Reply[] | null;
      } catch (err) {
        res = group.flatMap(() => Array.from({ length: k }, (): Reply => [err as Error, null]));
      }
      group.forEach((it, i) => {
        out.set(it, per === undefined ? one(res, i) : Array.from({ length: k }, (_, j) => one(res, i * k + j)));
      });
    }));
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Metrics.

  /** Read buffer depth (sum of XLEN) and lag (age of the oldest entry left in any stream). */
  async refreshStats(): Promise<AuditMetricsSnapshot> {
    const replies = await this.#perStream('XLEN', this.#streams, (p, st) => {
      p.xlen(st.key);
      p.xrange(st.key, '-', '+', 'COUNT', 1);
    }, 2);
    let depth = 0;
    let oldest = Infinity;
    let failed = false;
    for (const [, [[e1, n], [e2, r]]] of replies) {
      if (e1 || e2) { failed = true; continue; }
      depth += Number(n);
      const id = (r as [string, string[]][])[0]?.[0];
      if (id) oldest = Math.min(oldest, Number(id.slice(0, id.indexOf('-'))));
    }
    if (!failed) {
      this.metrics.bufferEvents = depth;
      this.metrics.lagSeconds = oldest === Infinity ? 0 : Math.max(0, (this.#now() - oldest) / 1000);
      this.metrics.statsAt = this.#now();
    }
    return this.metrics.snapshot();
  }

  // ------------------------------------------------------------------------------------------
  // Lease, sweep, retention.

  async #leaseLoop(): Promise<void> {
    // A first attempt soon after start, then every sweepInterval.
    await this.#sleep(Math.min(1000, this.#o.sweepInterval), 'lease');
    while (this.#running) {
      try {
        if (await this.#holdLease()) {
          await this.sweep();
          await this.retain();
          if (this.#sweepCount++ % 10 === 0) await this.#reap();
        }
      } catch { /* logged by the up/down state */ }
      if (!this.#running) break;
      await this.#sleep(this.#o.sweepInterval, 'lease');
    }
  }

  /** Take the lease, or keep it if held; answers whether this instance holds it now. */
  async #holdLease(): Promise<boolean> {
    try {
      const got = await this.#redis('lease', () => this.#loose.tieredSessionAuditLease(auditLeaseKey(this.#prefix), this.consumer, this.#o.leaseTtl) as Promise<number>);
      this.metrics.leaseHeld = got === 1;
    } catch (err) {
      this.metrics.leaseHeld = false;
      throw this.#redisDown(err);
    }
    return this.metrics.leaseHeld;
  }

  /**
   * The expiry sweep: rows not ended whose expiry passed more than sweepGrace ago, checked
   * against Redis. Session key gone → ended at its expiry, 'expired' (unless an explicit end got
   * there first; one arriving later still replaces it). Key still there → activity the buffer
   * has not delivered yet: expires_at = now + PTTL. Public for tests; the lease holder runs it
   * every sweepInterval (at most 20 × 500 rows per run; the rest waits for the next).
   */
  async sweep(): Promise<{ expired: number; extended: number }> {
    const n = this.names;
    const now = this.#now();
    const cutoff = now - this.#o.sweepGrace;
    let after: [number, string] = [0, ''];
    let expired = 0;
    let extended = 0;
    for (let b = 0; b < MAX_SWEEP_BATCHES; b++) {
      const rows = (await this.#pg(sweepSelectSql(n), [cutoff, after[0], after[1], SWEEP_BATCH, this.#prefix])).rows;
      if (rows.length === 0) break;
      const items = rows.map((r) => {
        const id = String(r.id);
        return { id, slot: this.#slotOfBucket.get(id.slice(0, BUCKET_LENGTH)) ?? 0 };
      });
      const ttls = await this.#perStream('PTTL', items, (p, it) => { p.pttl(sessionKeyOf(this.#prefix, it.id)); });
      const gone: string[] = [];
      const liveIds: string[] = [];
      const liveUntil: number[] = [];
      const at = this.#now();
      let redisErr: unknown;
      for (const it of items) {
        const [err, v] = ttls.get(it)!;
        if (err) { redisErr ??= err; continue; }
        const pttl = Number(v);
        if (pttl === -2) gone.push(it.id);
        else if (pttl >= 0) { liveIds.push(it.id); liveUntil.push(at + pttl); }
        // -1 (a session key without a TTL) does not happen; such a row is left as it is.
      }
      if (redisErr !== undefined) throw this.#redisDown(redisErr);
      this.#redisUp();
      if (gone.length > 0) expired += (await this.#pg(sweepExpireSql(n), [gone, this.#prefix])).rowCount ?? 0;
      if (liveIds.length > 0) extended += (await this.#pg(sweepExtendSql(n), [liveIds, liveUntil, this.#prefix])).rowCount ?? 0;
      const last = rows[rows.length - 1];
      after = [Number(last.expires_ms), String(last.id)];
      if (rows.length < SWEEP_BATCH) break;
    }
    this.metrics.sweeps++;
    this.metrics.sweptExpired += expired;
    this.metrics.sweptExtended += extended;
    return { expired, extended };
  }

  /** Retention: delete rows ended more than retentionDays ago, 1000 per statement (public for tests). */
  async retain(): Promise<number> {
    const cutoff = this.#now() - this.#o.retentionDays * DAY;
    let total = 0;
    for (let b = 0; b < MAX_RETENTION_BATCHES; b++) {
      const n = (await this.#pg(retentionSql(this.names), [cutoff, RETENTION_BATCH, this.#prefix])).rowCount ?? 0;
      total += n;
      if (n < RETENTION_BATCH) break;
    }
    this.metrics.retentionDeleted += total;
    return total;
  }

  /** Forget consumers idle for long with nothing pending (instances that are gone). */
  async #reap(): Promise<void> {
    await this.#perStream('reap', this.#streams.filter((s) => !s.absent), (p, st) => {
      (p as unknown as Loose).tieredSessionAuditReap(st.key, AUDIT_GROUP, this.#o.reapIdle, '');
    });
  }

  /** One statement in its own bounded transaction; PostgreSQL's up/down state follows the outcome. */
  async #pg(sql: string, params: unknown[]): Promise<AuditQueryResult> {
    try {
      const v = await this.#transaction((c) => c.query(sql, params));
      this.#pgUp();
      return v;
    } catch (err) {
      throw this.#pgDown(err);
    }
  }
}
