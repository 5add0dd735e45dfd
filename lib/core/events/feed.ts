// The event feed: delivers the session events the store's scripts append to the bucket streams
// `<prefix>{<bucket>}v` (written by the same script as each change) to the handlers the app
// registers, through the consumer group `events` every instance shares.
//
// Delivery. One round reads, per stream, this instance's own pending entries (cursor '0': after
// a failure or a takeover) or else new ones ('>'); each stream's entries are handed to the
// handlers in order, one at a time (the streams side by side), and acknowledged (XACK + XDEL)
// once every handler returned. A handler that throws stops its stream: the entry stays pending
// and is tried again after retryDelay × 2^(try - 1) (with jitter, at most a minute; a try that
// has not settled after handlerTimeout counts as failed), later entries of the stream wait behind
// it (one user's events keep their order), and after maxAttempts tries the entry is parked: moved,
// atomically, to the bucket's parked stream `<prefix>{<bucket>}w`, where `parked()` lists it and
// `replay()` puts it back. An instance that stops leaves its pending entries to be taken over
// (XAUTOCLAIM) after claimIdle. Every entry goes to one instance: an event reaches a handler twice only after a failure (a throw, a lost
// acknowledgement, an instance that stopped), and every delivery carries the same `id`.
//
// Expiry. A session that expires runs no script; the scripts keep a schedule of the bucket's
// expiries (`<prefix>{<bucket>}x`) and every consuming instance sweeps it each sweepInterval:
// one script per bucket ends, atomically, what is due and gone (`ended`, reason `expired`, at its
// expiry) and moves what is still live to its current expiry, so two sweepers never tell one twice.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { ERR_INVALID_ARGUMENT, ERR_NOT_FOUND } from '../errors.js';
import type { Logger } from '../log.js';
import type { RedisClient, ResolvedEvents } from '../options.js';
import { AuditStreams, isNoGroup, type Loose, type StreamState } from '../audit/streams.js';
import { plainExposition } from '../observe/exposition.js';
import { eventStreamKey, expiryScheduleKey, parkedStreamKey } from '../store/keys.js';
import { BUCKET_LENGTH, ID_LENGTH } from '../token.js';
import {
  fieldsOf, parseSessionEvent, type EventFeedStats, type ParkedEvent, type SessionEvent, type SessionEventHandler,
  type SessionEventType,
} from './types.js';

export const EVENTS_GROUP = 'events';

/** Entries read per stream per round. */
const BATCH = 100;
/** A pending entry idle this long on a consumer is taken over by another instance, ms. */
const CLAIM_IDLE = 30_000;
/** Longest pause between a stream's retries, and between rounds while Redis fails, ms. */
const MAX_BACKOFF = 60_000;
/** Due expiries one sweep script handles per bucket. */
const SWEEP_LIMIT = 500;
/** How often the depth and lag are read, ms. */
const STATS_INTERVAL = 5000;
/** Parked entries kept per bucket, and how long (30 days) after the last one. */
const PARKED_CAP = 10_000;
const PARKED_TTL = 30 * 24 * 3600_000;
/** Longest error message kept with a parked event. */
const ERROR_MAX = 500;

const TYPES: ReadonlySet<string> = new Set(['created', 'rotated', 'reauthenticated', 'updated', 'ended', '*']);

/**
 * sweep: KEYS[1] a bucket's expiry schedule, KEYS[2] its event stream. ARGV: now, limit, the
 * bucket's key head `<prefix>{<bucket>}`, the stream's cap and TTL. Members are the public id
 * then the user id. Returns how many it ended.
 */
const SWEEP = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local ended = 0
for i = 1, #due, 2 do
  local m = due[i]
  local id = string.sub(m, 1, ${ID_LENGTH})
  local t = redis.call('PTTL', ARGV[3] .. string.sub(id, ${BUCKET_LENGTH + 1}))
  if t > 0 then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + t, m)
  else
    redis.call('ZREM', KEYS[1], m)
    if t == -2 then
      redis.pcall('XGROUP', 'CREATE', KEYS[2], '${EVENTS_GROUP}', '0', 'MKSTREAM')
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 't', 'e', 's', id, 'u', string.sub(m, ${ID_LENGTH + 1}),
        'w', string.format('%.0f', tonumber(due[i + 1])), 'y', 'expired')
      redis.call('PEXPIRE', KEYS[2], ARGV[5])
      ended = ended + 1
    end
  end
end
return ended`;

/**
 * park: KEYS[1] a bucket's event stream, KEYS[2] its parked stream. ARGV: group, entry id, the
 * event's idempotency key, the last error, tries, cap, TTL. Moves the entry (with why) and
 * acknowledges it, in one step. Returns 1 when moved, 0 when the entry was gone (acknowledged).
 */
const PARK = `
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if #e == 0 then return 0 end
local f = {}
local src = e[1][2]
for i = 1, #src, 2 do
  if src[i] ~= 'K' and src[i] ~= 'E' and src[i] ~= 'N' then f[#f + 1] = src[i]; f[#f + 1] = src[i + 1] end
end
f[#f + 1] = 'K'; f[#f + 1] = ARGV[3]
f[#f + 1] = 'E'; f[#f + 1] = ARGV[4]
f[#f + 1] = 'N'; f[#f + 1] = ARGV[5]
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(f))
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return 1`;

/**
 * replay: KEYS[1] a bucket's parked stream, KEYS[2] its event stream. ARGV: the parked entry's
 * id ('' = every one), group, cap, TTL. Moves entries back to the stream, their idempotency key
 * kept. Returns how many it moved.
 */
const REPLAY = `
local list = ARGV[1] == '' and redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1000) or redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #list == 0 then return 0 end
redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[2], '0', 'MKSTREAM')
for _, e in ipairs(list) do
  local f = {}
  for i = 1, #e[2], 2 do
    if e[2][i] ~= 'E' and e[2][i] ~= 'N' then f[#f + 1] = e[2][i]; f[#f + 1] = e[2][i + 1] end
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(f))
  redis.call('XDEL', KEYS[1], e[1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return #list`;

const COMMANDS: [string, string][] = [
  ['tieredSessionEventSweep', SWEEP], ['tieredSessionEventPark', PARK], ['tieredSessionEventReplay', REPLAY],
];

export interface EventFeedOptions {
  readonly client: RedisClient;
  readonly keyPrefix: string;
  readonly events: ResolvedEvents;
  readonly commandTimeout: number;
  readonly bufferCap: number;
  readonly bufferTtl: number;
  readonly logger: Logger;
  readonly now: () => number;
  /** @internal tests: a fixed consumer name, a shorter takeover. */
  readonly testing?: { consumer?: string; claimIdle?: number };
}

/** One stream's retry state on this instance. */
interface Retry { at: number; entry: string; attempts: number }

interface Counters {
  redisUp: boolean;
  delivered: number; retried: number; parked: number; invalid: number; lost: number; claimed: number; expired: number;
  pending: number; lagSeconds: number;
}

export class EventFeed {
  readonly consumer: string;
  readonly #o: EventFeedOptions;
  readonly #streams: AuditStreams;
  readonly #loose: Loose;
  readonly #handlers = new Map<string, Set<SessionEventHandler<'*'>>>();
  readonly #retries = new Map<StreamState, Retry>();
  readonly #m: Counters = {
    redisUp: true, delivered: 0, retried: 0, parked: 0, invalid: 0, lost: 0, claimed: 0, expired: 0, pending: 0, lagSeconds: 0,
  };
  readonly #claimIdle: number;
  #running = false;
  #closed = false;
  #loopDone: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #failures = 0;
  #nextClaimAt = 0;
  #nextSweepAt = 0;
  #nextStatsAt = 0;

  constructor(o: EventFeedOptions) {
    this.#o = o;
    this.consumer = o.testing?.consumer ?? `${os.hostname()}-${process.pid}-${randomBytes(6).toString('base64url')}`;
    this.#claimIdle = o.testing?.claimIdle ?? CLAIM_IDLE;
    this.#streams = new AuditStreams({ metrics: this.#m, log: o.logger, now: o.now }, o.client, o.keyPrefix, o.commandTimeout,
      { group: EVENTS_GROUP, keyOf: eventStreamKey, label: 'event feed' });
    this.#loose = o.client as unknown as Loose;
    for (const [name, lua] of COMMANDS) {
      if (typeof this.#loose[name] !== 'function') o.client.defineCommand(name, { numberOfKeys: 2, lua });
    }
  }

  /** Register a handler; the first one starts delivery on this instance (unless `consume` is false). */
  on<T extends SessionEventType | '*'>(type: T, handler: SessionEventHandler<T>): void {
    if (!TYPES.has(type)) throw new ERR_INVALID_ARGUMENT('type', `expected one of ${[...TYPES].join(', ')}, got ${String(type)}`);
    if (typeof handler !== 'function') throw new ERR_INVALID_ARGUMENT('handler', 'expected a function');
    let set = this.#handlers.get(type);
    if (set === undefined) this.#handlers.set(type, (set = new Set()));
    set.add(handler as unknown as SessionEventHandler<'*'>);
    if (this.#o.events.consume && !this.#closed) this.#start();
  }

  /** Remove a handler. Delivery goes on (an event no handler wants is acknowledged). */
  off<T extends SessionEventType | '*'>(type: T, handler: SessionEventHandler<T>): void {
    this.#handlers.get(type)?.delete(handler as unknown as SessionEventHandler<'*'>);
  }

  stats(): EventFeedStats {
    const m = this.#m;
    return {
      running: this.#running, redisUp: m.redisUp, delivered: m.delivered, retried: m.retried, parked: m.parked, invalid: m.invalid,
      lost: m.lost, claimed: m.claimed, expired: m.expired, pending: m.pending, lagSeconds: m.lagSeconds,
    };
  }

  /** The stats in the Prometheus text format. */
  prometheus(): string {
    const s = this.stats();
    return plainExposition([
      ['gauge', 'tiered_session_events_up', 'Whether the event feed reaches Redis (1) or is retrying (0).', s.redisUp],
      ['gauge', 'tiered_session_events_lag_seconds', 'Age of the oldest session event not yet delivered.', s.lagSeconds],
      ['gauge', 'tiered_session_events_pending', 'Session events waiting in the Redis streams.', s.pending],
      ['counter', 'tiered_session_events_delivered_total', 'Session events every handler took, acknowledged.', s.delivered],
      ['counter', 'tiered_session_events_retried_total', 'Handler tries that failed and were scheduled again.', s.retried],
      ['counter', 'tiered_session_events_parked_total', 'Session events parked after their last try failed.', s.parked],
      ['counter', 'tiered_session_events_invalid_total', 'Stream entries that were not well-formed events (dropped).', s.invalid],
      ['counter', 'tiered_session_events_lost_total', 'Pending events trimmed from a stream before delivery.', s.lost],
      ['counter', 'tiered_session_events_claimed_total', 'Events taken over from an instance that stopped.', s.claimed],
      ['counter', 'tiered_session_events_expired_total', 'Sessions the expiry sweep found expired.', s.expired],
    ]);
  }

  /** Parked events, oldest first, at most `limit` (every bucket's parked stream). */
  async parked(limit = 100): Promise<ParkedEvent[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new ERR_INVALID_ARGUMENT('limit', `expected an integer in [1, 10000], got ${String(limit)}`);
    }
    const st = this.#streams;
    const replies = await st.perSlot('XRANGE', st.all, (p, s) => {
      p.xrange(parkedStreamKey(this.#o.keyPrefix, s.bucket), '-', '+', 'COUNT', limit);
    });
    const out: ParkedEvent[] = [];
    for (const [s, [err, reply]] of replies) {
      if (err) throw st.down(err);
      for (const [entryId, list] of reply as [string, string[]][]) {
        const f = fieldsOf(list);
        const event = parseSessionEvent(f, s.bucket, entryId);
        if (event === null) continue;
        out.push({
          parkedId: `${s.bucket}.${entryId}`, event, error: f.E ?? '', attempts: Number(f.N ?? 0),
          parkedAt: Number(entryId.slice(0, entryId.indexOf('-'))),
        });
      }
    }
    return out.sort((a, b) => a.parkedAt - b.parkedAt || (a.parkedId < b.parkedId ? -1 : 1)).slice(0, limit);
  }

  /**
   * Put parked events back for delivery, their `id` unchanged: one (its `parkedId`), or every
   * one. Resolves to how many went back. Rejects with ERR_TIERED_SESSION_NOT_FOUND for a parked
   * id that is not well-formed.
   */
  async replay(parkedId?: string): Promise<number> {
    let only: { bucket: string; entry: string } | undefined;
    if (parkedId !== undefined) {
      const m = typeof parkedId === 'string' ? /^(.{3})\.(\d{1,16}-\d{1,16})$/.exec(parkedId) : null;
      if (m === null || !this.#streams.all.some((s) => s.bucket === m[1])) throw new ERR_NOT_FOUND();
      only = { bucket: m[1], entry: m[2] };
    }
    const st = this.#streams;
    const targets = only === undefined ? st.all : st.all.filter((s) => s.bucket === only!.bucket);
    let moved = 0;
    for (;;) {
      const replies = await st.perSlot('replay', targets, (p, s) => {
        (p as unknown as Loose).tieredSessionEventReplay(parkedStreamKey(this.#o.keyPrefix, s.bucket), s.key, only?.entry ?? '',
          EVENTS_GROUP, this.#o.bufferCap, this.#o.bufferTtl);
      });
      let round = 0;
      for (const [, [err, n]] of replies) {
        if (err) throw st.down(err);
        round += Number(n);
      }
      moved += round;
      // Every one: a stream moves 1000 a call, until none is left.
      if (only !== undefined || round === 0) break;
    }
    if (moved > 0) this.#wake?.();
    return moved;
  }

  /** One sweep of the expiry schedules now (the loop runs it each sweepInterval). */
  async sweep(): Promise<number> {
    const st = this.#streams;
    const now = this.#o.now();
    const replies = await st.perSlot('sweep', st.all, (p, s) => {
      (p as unknown as Loose).tieredSessionEventSweep(expiryScheduleKey(this.#o.keyPrefix, s.bucket), s.key, now, SWEEP_LIMIT,
        `${this.#o.keyPrefix}{${s.bucket}}`, this.#o.bufferCap, this.#o.bufferTtl);
    });
    let ended = 0;
    let failure: unknown;
    let again = false;
    for (const [, [err, n]] of replies) {
      if (err) { failure ??= err; continue; }
      ended += Number(n);
      if (Number(n) >= SWEEP_LIMIT) again = true;
    }
    this.#m.expired += ended;
    if (failure !== undefined) throw st.down(failure);
    // A bucket with more due than one call handles is swept again at once.
    if (again) this.#nextSweepAt = 0;
    return ended;
  }

  /**
   * One round: takeovers and the sweep when due, one read per stream, the deliveries, the
   * acknowledgements. Answers whether a stream had more to read.
   */
  async round(): Promise<boolean> {
    const st = this.#streams;
    if (!st.ready && !st.everReady) return false; // still connecting at startup: not an outage
    const now = this.#o.now();
    if (now >= this.#nextSweepAt) {
      this.#nextSweepAt = now + this.#o.events.sweepInterval;
      await this.sweep();
    }
    if (now >= this.#nextClaimAt) {
      const again = await this.#claim();
      this.#nextClaimAt = again ? 0 : now + Math.max(100, Math.floor(this.#claimIdle / 3));
    }
    // Streams waiting for a retry are not read until it is due.
    const due = st.all.filter((s) => (this.#retries.get(s)?.at ?? 0) <= now);
    const replies = await st.perSlot('XREADGROUP', due, (p, s) => {
      (p as unknown as Loose).xreadgroup('GROUP', EVENTS_GROUP, this.consumer, 'COUNT', BATCH, 'STREAMS', s.key, s.cursor);
    });
    let more = false;
    let redisError: unknown;
    const work: [StreamState, [string, string[] | null][]][] = [];
    for (const [s, [err, reply]] of replies) {
      if (err) {
        if (isNoGroup(err)) { s.absent = true; continue; }
        redisError ??= err;
        s.cursor = '0'; // the reply may have been lost after the entries were delivered to us
        continue;
      }
      s.absent = false;
      const list = ((reply as [string, [string, string[] | null][]][] | null)?.[0]?.[1]) ?? [];
      if (list.length >= BATCH) more = true;
      if (list.length > 0) work.push([s, list]);
      else if (s.cursor === '0') { s.cursor = '>'; more = true; }
    }
    const acks = new Map<StreamState, { ids: string[] }>();
    await Promise.all(work.map(async ([s, list]) => {
      const ids = await this.#deliver(s, list);
      if (ids.length > 0) acks.set(s, { ids });
    }));
    const acked = await st.ack(acks);
    let ackError: unknown;
    for (const [s, [err]] of acked) {
      if (err) { ackError ??= err; s.cursor = '0'; continue; }
      this.#m.delivered += acks.get(s)!.ids.length;
    }
    const failure = redisError ?? ackError;
    if (failure !== undefined) throw st.down(failure);
    st.up();
    return more;
  }

  /** Hand one stream's entries to the handlers in order; answers the ids to acknowledge. */
  async #deliver(s: StreamState, list: [string, string[] | null][]): Promise<string[]> {
    const done: string[] = [];
    for (const [entryId, fields] of list) {
      // null fields: pending, but trimmed from the stream before anyone delivered it.
      if (fields === null) { this.#m.lost++; done.push(entryId); continue; }
      const event = parseSessionEvent(fieldsOf(fields), s.bucket, entryId);
      if (event === null) {
        this.#m.invalid++;
        this.#o.logger.warn({ stream: s.key, entry: entryId }, 'tiered-session: event feed: dropped an entry that is not a session event');
        done.push(entryId);
        continue;
      }
      const retry = this.#retries.get(s);
      const attempt = retry?.entry === entryId ? retry.attempts + 1 : 1;
      try {
        await this.#call(event, attempt);
        this.#retries.delete(s);
        done.push(entryId);
      } catch (err) {
        s.cursor = '0';
        if (attempt >= this.#o.events.maxAttempts) {
          this.#retries.delete(s);
          await this.#park(s, entryId, event, err, attempt).catch(() => {});
          // Delivery goes on with the next entry at once (read again from '0').
        } else {
          this.#m.retried++;
          const delay = Math.min(MAX_BACKOFF, this.#o.events.retryDelay * 2 ** (attempt - 1));
          this.#retries.set(s, { at: this.#o.now() + delay * (0.8 + 0.4 * Math.random()), entry: entryId, attempts: attempt });
          this.#o.logger.warn({ err: errorText(err), event: event.id, type: event.type, attempt },
            'tiered-session: event feed: a handler failed; the event will be tried again');
        }
        break;
      }
    }
    return done;
  }

  async #call(event: SessionEvent, attempt: number): Promise<void> {
    const delivery = Object.freeze({ attempt });
    for (const type of [event.type, '*']) {
      const set = this.#handlers.get(type);
      if (set === undefined) continue;
      for (const h of [...set]) await this.#bounded(h(event, delivery));
    }
  }

  /** A handler's result, rejected once handlerTimeout passes unsettled. */
  #bounded(v: unknown): unknown {
    if (typeof (v as PromiseLike<unknown> | null)?.then !== 'function') return v;
    const ms = this.#o.events.handlerTimeout;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the handler did not settle within ${ms} ms`)), ms);
      timer.unref();
    });
    return Promise.race([v, late]).finally(() => clearTimeout(timer));
  }

  async #park(s: StreamState, entryId: string, event: SessionEvent, err: unknown, attempts: number): Promise<void> {
    await this.#streams.call('park', () => this.#loose.tieredSessionEventPark(s.key, parkedStreamKey(this.#o.keyPrefix, s.bucket),
      EVENTS_GROUP, entryId, event.id, errorText(err), attempts, PARKED_CAP, PARKED_TTL) as Promise<number>);
    this.#m.parked++;
    this.#o.logger.error({ err: errorText(err), event: event.id, type: event.type, attempts },
      'tiered-session: event feed: parked an event after its last try failed (sessions.events.parked() lists it)');
  }

  /** Take over entries idle longer than claimIdle (an instance that stopped); give streams their lost group back. */
  async #claim(): Promise<boolean> {
    const st = this.#streams;
    const present = st.all.filter((s) => !s.absent);
    const absent = st.all.filter((s) => s.absent);
    let again = false;
    const claims = await st.perSlot('XAUTOCLAIM', present, (p, s) => {
      (p as unknown as Loose).xautoclaim(s.key, EVENTS_GROUP, this.consumer, this.#claimIdle, s.claimCursor, 'COUNT', BATCH, 'JUSTID');
    });
    for (const [s, [err, reply]] of claims) {
      if (err) { if (isNoGroup(err)) s.absent = true; continue; }
      const [next, claimed, deleted] = reply as [string, string[], string[]?];
      s.claimCursor = next;
      if (next !== '0-0') again = true;
      if (claimed.length > 0) { s.cursor = '0'; this.#m.claimed += claimed.length; }
      if (deleted && deleted.length > 0) this.#m.lost += deleted.length;
    }
    if (absent.length > 0) {
      const made = await st.perSlot('XGROUP', absent, (p, s) => {
        (p as unknown as Loose).xgroup('CREATE', s.key, EVENTS_GROUP, '0');
      });
      for (const [s, [err]] of made) {
        if (!err || /BUSYGROUP/.test(err.message)) { s.absent = false; s.cursor = '0'; }
      }
    }
    return again;
  }

  /** Read the depth (sum of XLEN) and the lag (the oldest entry's age). */
  async refreshStats(): Promise<EventFeedStats> {
    const st = this.#streams;
    const replies = await st.perSlot('XLEN', st.all, (p, s) => {
      p.xlen(s.key);
      p.xrange(s.key, '-', '+', 'COUNT', 1);
    }, 2);
    let depth = 0;
    let oldest = Infinity;
    for (const [, [[e1, n], [e2, r]]] of replies) {
      if (e1 || e2) return this.stats();
      depth += Number(n);
      const id = (r as [string, string[]][])[0]?.[0];
      if (id) oldest = Math.min(oldest, Number(id.slice(0, id.indexOf('-'))));
    }
    this.#m.pending = depth;
    this.#m.lagSeconds = oldest === Infinity ? 0 : Math.max(0, (this.#o.now() - oldest) / 1000);
    return this.stats();
  }

  #start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loopDone = this.#loop();
  }

  /** Stop: finish the round in flight, and leave the group if nothing is pending on this instance. */
  async close(): Promise<void> {
    this.#closed = true;
    if (!this.#running) return;
    this.#running = false;
    this.#wake?.();
    await this.#loopDone;
    if (!this.#streams.ready) return;
    await this.#streams.reap(0, this.consumer).catch(() => {});
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      let more = false;
      try {
        more = await this.round();
        this.#failures = 0;
      } catch {
        this.#failures++;
      }
      if (!this.#running) break;
      const now = this.#o.now();
      if (now >= this.#nextStatsAt) {
        this.#nextStatsAt = now + STATS_INTERVAL;
        await this.refreshStats().catch(() => {});
      }
      if (more && this.#failures === 0) continue;
      const poll = this.#o.events.pollInterval;
      const wait = this.#failures === 0 ? poll
        : Math.min(MAX_BACKOFF, poll * 2 ** Math.min(this.#failures - 1, 16) * (0.8 + 0.4 * Math.random()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, wait);
        timer.unref();
        function done() { clearTimeout(timer); resolve(); }
        this.#wake = done;
      });
    }
  }
}

/** A failure's message, short, for a log line or a parked event (a handler's error is the app's). */
function errorText(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > ERROR_MAX ? text.slice(0, ERROR_MAX) : text;
}
