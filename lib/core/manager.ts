import type { Cluster } from 'ioredis';
import { isIP } from 'node:net';
import { ERR_BAD_USER_ID, ERR_NOT_FOUND } from './errors.js';
import type { DeviceInfo } from './device.js';
import { CLOCK_BASE, LocalCache, coarseNow, entryOf, type Entry, type Ticket } from './local-cache.js';
import type { Logger } from './log.js';
import { Metrics, type StatsSnapshot } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { decodeDevice, encodeDevice, parseData, serialiseData, type Session, type SessionData, type SessionInfo } from './session.js';
import { RedisStore, isUnknownOutcome, type NewRecord, type StoredSession } from './store/redis-store.js';
import { RevocationChannel, type ChannelState, type Change } from './store/channel.js';
import { Acknowledgement, type AcknowledgementState } from './store/acknowledgement.js';
import { Freshness } from './store/freshness.js';
import { TouchQueue, type Touch } from './touch-queue.js';
import { RevocationReplay } from './replay.js';
import { auditSinkOf, type AuditSink } from './audit/sink.js';
import { Telemetry } from './observe/telemetry.js';
import { migrate } from './audit/sql.js';
import { auditPrometheus } from './audit/metrics.js';
import type { AuditSessionRow, ExplicitEndReason, HistoryQuery } from './audit/sql.js';
import { planCaps, type Caps, type Row } from './secrets.js';
import {
  ID_LENGTH, SECRET_LENGTH, TAG_LENGTH, TOKEN_LENGTH, constantTimeEqual, hashSecret, isPublicId, isTokenShape,
  isWellFormed, newRandomAndSecret, newSecret, secretMatchesAt, userTag,
} from './token.js';

export interface CreateInput {
  device: DeviceInfo;
  ip?: string | null;
  country?: string | null;
  data?: SessionData;
  /** false: the short lifetimes (a browser-session cookie). @default true */
  remember?: boolean;
}

/** Epoch milliseconds with sub-millisecond precision: revocation latency is measured in µs. */
const preciseNow = () => performance.timeOrigin + performance.now();

/**
 * A flat copy of a string. Slices of a request's Cookie header would keep the whole header
 * alive for as long as the L1 entry lives; entries hold copies instead (misses only).
 */
const own = (s: string) => Buffer.from(s, 'latin1').toString('latin1');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * The session manager: the Redis model (L2) underneath, the local cache (L1) in front, the
 * revocation channel that keeps the two coherent, and the throttled touch queue. One per
 * registration (Fastify) or middleware (Express). Framework-neutral: it speaks of user ids,
 * tokens and public ids, never of requests.
 */
export class SessionManager {
  readonly #o: ResolvedOptions;
  readonly #store: RedisStore;
  readonly #l1: LocalCache;
  readonly #channel: RevocationChannel | undefined;
  readonly #touches: TouchQueue;
  readonly #log: Logger;
  /** The clock of the hot path: read once per turn when it is the real one. */
  readonly #hotNow: () => number;
  /** Ids of creates whose outcome is unknown (timed out after sending): revoked once Redis answers. */
  readonly #orphans = new Set<string>();
  #closed = false;
  /** confirmRevocations: 'auto': replication as Redis reports it (read at start and every 5 s). */
  readonly #ack: Acknowledgement | undefined;
  /** Where reads can go to a replica: whether it is shown fresh now (else the primary is read). */
  readonly #fresh: Freshness | undefined;
  /** Recent revocations, applied again after the connection to Redis was interrupted (a failover may have lost them). */
  readonly #replay: RevocationReplay;
  /** The client's `ready` listener (a reconnection may follow a failover). */
  #onReady: (() => void) | undefined;
  /** Replicas did not acknowledge the last revocation (logged once per change). */
  #unacknowledged = false;
  /** The audit trail's consumer (every instance consumes; one at a time sweeps). */
  readonly #audit: AuditSink | undefined;
  readonly metrics = new Metrics();
  readonly #telemetry: Telemetry;

  constructor(options: ResolvedOptions, log: Logger) {
    this.#o = options;
    this.#log = log;
    this.#hotNow = options.now === Date.now ? coarseNow : options.now;
    const audit = options.audit;
    this.#store = new RedisStore(options.client, options.keyPrefix, options.commandTimeout,
      { long: options.idleTimeout, short: options.shortSession.idleTimeout }, options.readFrom,
      audit === undefined ? undefined : {
        // The buffer's bound, spread over the 256 bucket streams; each stream lives as long as
        // rows do (at most 30 days) while nothing reads it.
        cap: Math.ceil(audit.bufferEvents / 256),
        ttl: Math.min(30, audit.retentionDays) * 24 * 3600_000,
        activity: audit.activityInterval,
      });
    this.#audit = auditSinkOf(options, log);
    const ack = options.confirmRevocations;
    if (ack.mode === 'on') this.#store.acknowledgedBy = ack;
    if (ack.mode === 'auto') {
      // Unknown acknowledges: until Redis says there is no replica, revocations WAIT.
      this.#store.acknowledgedBy = ack;
      this.#ack = new Acknowledgement(options.client, options.commandTimeout, (state, detail) => this.#acknowledgement(state, detail));
      this.#store.acknowledgement = this.#ack;
    }
    this.#telemetry = new Telemetry(this.metrics, options.telemetry, () => this.prometheus());
    this.#store.observer = this.#telemetry;
    this.metrics.acknowledgement = ack.mode === 'off' ? 'off' : ack.mode === 'on' ? 'on' : 'unknown';
    // Where reads may come from a lagging replica, invalidated ids are remembered for the
    // tolerated lag and read from the primary meanwhile.
    this.#l1 = new LocalCache(options.localCache, () => this.cacheTrusted,
      this.#store.replicaReads ? options.replicaLagTolerance : 0);
    this.#touches = new TouchQueue((items) => this.#writeTouches(items));
    this.#replay = new RevocationReplay({
      revoke: (id) => this.#store.revoke(id, '', preciseNow(), 'revoked', this.#o.now(), '', false),
      rotate: (id, secretHash, count) => this.#store.rotate(id, secretHash, preciseNow(), this.#o.now(), count),
    }, log);
    if (this.#store.replicaReads) this.#fresh = new Freshness(options.heartbeatInterval, options.replicaLagTolerance);
    // With readFrom the channel runs even without a local cache: its heartbeats through that
    // replica are what shows it fresh.
    if (options.localCache || options.readFrom !== undefined) {
      this.metrics.channelState = 'connecting';
      this.#channel = new RevocationChannel(
        options.client, options.readFrom, this.#store.channel, options.heartbeatInterval,
        (msg) => this.#store.publish(msg),
        {
          onRevoked: (ids, sentAt, change) => this.#received(ids, sentAt, change),
          onInterrupted: () => { this.#l1.clear(); this.#replay.interrupted(); },
          onState: (state, reason, err) => this.#channelState(state, reason, err),
          onReplicaProof: (lagMs) => this.#fresh?.proven(lagMs),
        },
      );
    }
  }

  /** The Redis model underneath (keys, scripts): for tests and tools. */
  get store(): RedisStore { return this.#store; }

  /** The channel is proven to deliver, so the local cache may serve and be filled. */
  get cacheTrusted(): boolean { return this.#channel?.proven === true; }

  /** The local cache, for tests. */
  get localCache(): LocalCache { return this.#l1; }

  async start(): Promise<void> {
    await this.#telemetry.start();
    const c = this.#o.client;
    // A client made with `lazyConnect: true` waits for its first command; the fast-fail path
    // never sends one while the client is not ready, so without this it would never connect.
    if (c.status === 'wait') c.connect().catch(() => { /* retried by ioredis; requests answer 503 meanwhile */ });
    const r = this.#o.readFrom;
    if (r !== undefined && r.status === 'wait') r.connect().catch(() => {});
    // Every reconnection of the client after the first: a failover may have lost recent revocations.
    let connected = c.status === 'ready';
    this.#onReady = () => { if (connected) this.#replay.interrupted(); connected = true; };
    c.on('ready', this.#onReady);
    await this.#ack?.start();
    const reader = r ?? c;
    if (this.#fresh !== undefined && (reader as { isCluster?: boolean }).isCluster === true) {
      this.#fresh.probe(reader as Cluster, this.#o.heartbeatInterval, this.#o.commandTimeout);
    }
    await this.#channel?.start();
    // Reads go to readFrom once a heartbeat has come through it: wait (bounded) for the first,
    // so a new instance reads locally from its first request.
    if (r !== undefined) await this.#trusted();
    if (this.#audit !== undefined) void this.#startAudit();
    if (this.#o.prewarm > 0 && this.#l1.enabled) {
      try {
        await this.#prewarm(this.#o.prewarm);
      } catch (err) {
        this.#log.debug({ err }, 'tiered-session: pre-warm failed');
      }
    }
  }

  /**
   * The table first (PostgreSQL may be down at start: retried until it answers), then the sink.
   * Nothing waits for this: events wait in the Redis buffer meanwhile.
   */
  async #startAudit(): Promise<void> {
    const a = this.#o.audit!;
    for (let attempt = 0; a.migrate && !this.#closed; attempt++) {
      try {
        await migrate(a.pool, { schema: a.schema, table: a.table, keyPrefix: this.#o.keyPrefix });
        break;
      } catch (err) {
        if (attempt === 0) this.#log.error({ err },
          'tiered-session: audit table could not be created (retrying); events wait in Redis meanwhile');
        await sleep(Math.min(1000 * 2 ** attempt, 30_000));
      }
    }
    if (!this.#closed && a.consume) this.#audit!.start();
  }

  /** A user's sessions live at any moment in [from, to], most recent first (audit on; else null). */
  history(userId: string, q: HistoryQuery = {}): Promise<AuditSessionRow[]> | null {
    return this.#audit === undefined ? null : this.#audit.history(userId, q);
  }

  /** Flush pending touches and close the subscriber. The app's own client is left open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#telemetry.close();
    this.#ack?.stop();
    this.#replay.close();
    if (this.#onReady !== undefined) this.#o.client.off('ready', this.#onReady);
    this.#fresh?.stop();
    await this.#audit?.close();
    await this.#touches.close();
    await this.#channel?.stop();
    this.#l1.clear();
  }

  /** The user's tag: every key and session id of the user's new sessions carries it. */
  tagOf(userId: string): string { return userTag(this.#o.secrets[0], this.#o.keyPrefix, userId); }

  /** The user's tag under each listed secret, the first secret's first (README: Rotating the secret). */
  tagsOf(userId: string): string[] {
    const tags = this.#o.secrets.map((k) => userTag(k, this.#o.keyPrefix, userId));
    return tags.filter((t, i) => tags.indexOf(t) === i);
  }

  /** Whether a session id carries its user's tag under a listed secret: a retired secret's sessions do not. */
  #tagListed(id: string, userId: string): boolean {
    const tag = id.slice(0, TAG_LENGTH);
    for (const k of this.#o.secrets) if (userTag(k, this.#o.keyPrefix, userId) === tag) return true;
    return false;
  }

  // ---- resolve ---------------------------------------------------------------------------

  /**
   * Resolve a cookie value. Synchronous on an L1 hit (no promise, no allocation beyond the id);
   * a promise on a miss. Null for anything that is not a live session, and no Redis call for a
   * value that cannot be a token.
   */
  resolve(token: string): Entry | null | Promise<Entry | null> {
    return token.length === TOKEN_LENGTH ? this.resolveAt(token, 0) : null;
  }

  /**
   * resolve() of the token that starts at `at` in `s` (a Cookie header, the caller having found a
   * value of a token's length there): the hot path reads it in place, slicing only the id.
   */
  resolveAt(s: string, at: number): Entry | null | Promise<Entry | null> {
    // The dot only here: a hit then compares the secret exactly; the full shape check runs
    // before any Redis call.
    if (s.charCodeAt(at + ID_LENGTH) !== 46) return null;
    const id = s.slice(at, at + ID_LENGTH);
    const now = this.#hotNow();
    const e = this.#l1.get(id, this.#hotNow === coarseNow ? now : coarseNow());
    if (e !== undefined && (e.proof.length === SECRET_LENGTH ? secretMatchesAt(e.proof, s, at) : provePrewarmed(e,
      s.slice(at + ID_LENGTH + 1, at + TOKEN_LENGTH)))) {
      const since = now - CLOCK_BASE - e.touched;
      if (since < (e.session.remembered ? this.#o.idleTimeout : this.#o.shortSession.idleTimeout) && now < e.session.absoluteExpiresAt) {
        this.metrics.l1Hits++;
        if (since >= this.#o.touchInterval) this.#touch(e, now);
        return e;
      }
      // Idle here may not be idle everywhere (other instances touch too): ask Redis.
      this.#l1.delete(id);
    }
    // A wrong secret for a cached id is answered from Redis, exactly as for an uncached id: the
    // timing does not tell whether the id is cached, and a rotation whose broadcast has not
    // arrived yet is honoured at once (the new secret refills the entry).
    const token = at === 0 && s.length === TOKEN_LENGTH ? s : s.slice(at, at + TOKEN_LENGTH);
    if (!isTokenShape(token)) return null;
    this.metrics.l1Misses++;
    return this.#load(id, token.slice(ID_LENGTH + 1));
  }

  async #load(id: string, secret: string): Promise<Entry | null> {
    const t = this.#l1.hold(id);
    try {
      t.read ??= this.#read(id);
      const s = await t.read;
      if (s === null || !constantTimeEqual(hashSecret(secret), s.secretHash) || !this.#tagListed(id, s.userId)) return null;
      // A revocation or rotation this instance answered, missing from what Redis holds now.
      if (this.#replay.lost(id, s.rotations)) return null;
      const now = this.#o.now();
      if (now >= s.absoluteAt || now >= s.expiresAt) return null;
      const mine = own(id);
      const e = entryOf(this.#sessionOf(mine, s), s, own(secret));
      if (now - CLOCK_BASE - e.touched >= this.#o.touchInterval) this.#touch(e, now);
      this.#l1.fill(mine, t, e);
      return e;
    } finally {
      this.#l1.release(id, t);
    }
  }

  /** confirmRevocations 'auto': WAIT unless Redis says no shard has (or had) a replica; one log line per change. */
  #acknowledgement(state: AcknowledgementState, detail: Record<string, unknown>): void {
    this.#store.acknowledgedBy = state === 'off' ? undefined : this.#o.confirmRevocations;
    this.metrics.acknowledgement = state;
    if (state === 'on') this.#log.info(detail, 'tiered-session: replicas found: revocations wait for one (WAIT)');
    else if (state === 'off') this.#log.info(detail, 'tiered-session: no replica: revocations no longer wait for one');
    else this.#log.warn(detail, 'tiered-session: replication could not be read: revocations wait for a replica (WAIT) until it can');
  }

  /** Read `id` from the primary: it was invalidated within the tolerated lag, or the replica is not shown fresh. */
  #primaryFor(id: string): boolean {
    return this.#l1.recentlyInvalidated(id) || (this.#fresh !== undefined && !this.#fresh.fresh);
  }

  async #read(id: string): Promise<StoredSession | null> {
    this.metrics.redisReads++;
    try {
      return await this.#store.read(id, this.#primaryFor(id));
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
  }

  #sessionOf(id: string, s: StoredSession): Session {
    return Object.freeze({
      id, userId: s.userId, data: parseData(s.data), createdAt: s.createdAt, absoluteExpiresAt: s.absoluteAt,
      remembered: s.remembered, authenticatedAt: s.authenticatedAt,
    });
  }

  /** The idle timeout of a session of this kind. */
  #idleOf(remembered: boolean): number {
    return remembered ? this.#o.idleTimeout : this.#o.shortSession.idleTimeout;
  }

  /** Wait until the channel is proven (at most two heartbeats, and at least 2 s); whether it is. */
  async #trusted(): Promise<boolean> {
    const until = Date.now() + Math.max(2000, 2 * this.#o.heartbeatInterval);
    while (!this.cacheTrusted && Date.now() < until && !this.#closed) await sleep(10);
    return this.cacheTrusted;
  }

  /**
   * Fill L1 with the most recently active sessions: one ZREVRANGE, then pipelined reads in
   * batches. Only once the channel is proven, and each id under a ticket taken before its
   * read, so an id invalidated while the reads are in flight is not filled.
   */
  async #prewarm(n: number): Promise<number> {
    if (!(await this.#trusted())) return 0;
    const ids = (await this.#store.recent(n)).filter(isPublicId);
    let filled = 0;
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500);
      const tickets: Ticket[] = batch.map((id) => this.#l1.hold(id));
      try {
        this.metrics.redisReads++;
        // The guard of every replica read: recently invalidated ids and a stale replica read the primary.
        const rows = await this.#store.readMany(batch, (id) => this.#primaryFor(id));
        const now = this.#o.now();
        rows.forEach((s, k) => {
          const id = batch[k];
          if (s === null || now >= s.absoluteAt || now >= s.expiresAt || this.#l1.get(id, coarseNow()) !== undefined ||
            !this.#tagListed(id, s.userId)
            || this.#replay.lost(id, s.rotations)) return;
          if (this.#l1.fill(id, tickets[k], entryOf(this.#sessionOf(id, s), s, s.secretHash))) filled++;
        });
      } finally {
        batch.forEach((id, k) => this.#l1.release(id, tickets[k]));
      }
      if (!this.cacheTrusted) break;
    }
    return filled;
  }

  /**
   * The caps across a user's tags: evicts what the caps remove from the older tags' sessions
   * and returns the caps the create script applies to the new tag alone (lib/core/secrets.ts).
   */
  async #capOlderTags(userId: string, tag: string, now: number, caps: Caps): Promise<{ caps: Caps; evicted: string[] }> {
    const rows: Row[] = [];
    const read = async (t: string) => {
      this.metrics.redisReads++;
      for (const r of await this.#store.list(t, now)) if (r.session.userId === userId) rows.push({ ...r, current: t === tag });
    };
    // The older tags first: once their sessions are gone (most of a rotation), one read each.
    await Promise.all(this.tagsOf(userId).filter((t) => t !== tag).map(read));
    if (rows.length === 0) return { caps, evicted: [] };
    await read(tag);
    const plan = planCaps(rows, caps);
    const evicted: string[] = [];
    for (const id of plan.evict) if (await this.revoke(id, userId, 'cap')) evicted.push(id);
    return { caps: plan.caps, evicted };
  }

  // ---- touches ---------------------------------------------------------------------------

  #touch(e: Entry, now: number): void {
    e.touched = now - CLOCK_BASE;
    this.#touches.queue(e.session.id, now);
  }

  /** Write every queued touch now, in one pipeline (one per user slot on a Cluster). */
  flushTouches(): Promise<void> { return this.#touches.flush(); }

  async #writeTouches(items: Touch[]): Promise<void> {
    if (this.#o.prewarm > 0) this.#noteRecent(items);
    this.metrics.redisWrites++;
    try {
      this.metrics.touchesWritten += await this.#store.touch(items);
    } catch (err) {
      this.metrics.redisErrors++;
      this.#log.debug({ err }, 'tiered-session: touch batch failed');
    }
  }

  #noteRecent(items: Touch[]): void {
    this.metrics.redisWrites++;
    this.#store.noteRecent(items, this.#o.prewarm, this.#o.idleTimeout).catch((err) => {
      this.metrics.redisErrors++;
      this.#log.debug({ err }, 'tiered-session: recent-set update failed');
    });
  }

  // ---- coherence -------------------------------------------------------------------------

  /** Drop ids from L1 and void any fill of them that is in flight. */
  invalidate(ids: Iterable<string>): void { this.#l1.invalidate(ids); }

  #received(ids: string[], sentAt: number, change: Change | undefined): void {
    this.#l1.invalidate(ids);
    if (change !== undefined) this.#replay.heard(ids, change);
    this.metrics.revocationsReceived += ids.length;
    if (Number.isFinite(sentAt)) this.metrics.revocationLatency.observe(Math.max(0, preciseNow() - sentAt) / 1000);
  }

  #channelState(state: ChannelState, reason: string, err: unknown): void {
    this.metrics.channelState = state;
    if (state === 'confirmed') this.#log.info({ channel: this.#store.channel },
      `tiered-session: revocation channel confirmed; local cache on (${reason})`);
    else if (state === 'refused') {
      this.#log.error({ err, channel: this.#store.channel },
        `tiered-session: Redis refused the revocation channel (${reason}); the local cache stays off and every request reads Redis. ` +
        `Grant the Redis user SUBSCRIBE and PUBLISH on the channel (ACL: &${this.#store.channel} +subscribe +publish); see the README's ` +
          `Redis ACL.`);
    } else this.#log.warn({ err, channel: this.#store.channel },
      `tiered-session: revocation channel down (${reason}); local cache cleared and off until it is confirmed again`);
  }

  // ---- writes ----------------------------------------------------------------------------

  /** Create a session for `userId`. Returns the session and the token (for the cookie only). */
  async create(userId: string, input: CreateInput): Promise<{ session: Session; token: string; evicted: string[] }> {
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > 512) {
      throw new ERR_BAD_USER_ID('expected a non-empty string of at most 512 characters');
    }
    // Lone surrogates all encode to the same UTF-8 replacement bytes: two different ids would
    // share one Redis user.
    if (!isWellFormed(userId)) throw new ERR_BAD_USER_ID('the string is not well-formed UTF-16 (it has a lone surrogate)');
    // PostgreSQL text cannot hold NUL: the audit row would name another user ("a\0b" as "ab").
    if (this.#o.audit !== undefined && userId.includes('\0')) {
      throw new ERR_BAD_USER_ID('with audit on, it must not contain NUL (PostgreSQL text cannot hold it)');
    }
    const dat = input.data === undefined ? '' : serialiseData(input.data, this.#o.maxDataBytes);
    const now = this.#o.now();
    const tag = this.tagOf(userId);
    const { random, secret } = newRandomAndSecret();
    const id = tag + random;
    const remembered = input.remember !== false;
    const absoluteAt = now + (remembered ? this.#o.absoluteTimeout : this.#o.shortSession.absoluteTimeout);
    const ttl = Math.min(this.#idleOf(remembered), absoluteAt - now);
    const ip = typeof input.ip === 'string' && isIP(input.ip) !== 0 ? input.ip : '';
    const record: NewRecord = {
      userId, secretHash: hashSecret(secret), absoluteAt, device: encodeDevice(input.device),
      ip, country: input.country || '', data: dat, remembered,
    };
    const type = input.device.type ?? '';
    let caps = { total: this.#o.maxSessionsPerUser, type, typeCap: this.#o.capsByType.get(type) ?? 0 };
    // Held from before the write: a revocation of this user that overtakes the create's reply
    // (log-out-everywhere on another instance) voids the fill below.
    const t = this.#l1.hold(id);
    try {
      this.metrics.redisWrites++;
      let evicted: string[] = [];
      // Sessions under a rotated secret's tag count toward the caps too (another slot: evicted first).
      if (this.#o.secrets.length > 1 && (caps.total > 0 || caps.typeCap > 0)) {
        ({ caps, evicted } = await this.#capOlderTags(userId, tag, now, caps));
      }
      try {
        evicted = evicted.concat(await this.#store.create(tag, random, now, ttl, caps, record));
      } catch (err) {
        this.metrics.redisErrors++;
        if (isUnknownOutcome(err)) this.#orphan(id);
        throw err;
      }
      this.#l1.invalidate(evicted);
      if (evicted.length > 0) {
        // A cap eviction is a revocation: the sign-in succeeds only once a replica has it.
        try {
          await this.#acknowledged(() => this.#store.acknowledgeOn(id));
        } catch (err) {
          this.#orphan(id);
          throw err;
        }
        // Acknowledged: the evicted sessions will not be needed back (their stash expires anyway).
        this.#store.dropStash(id).catch(() => {});
        this.#replay.note(evicted);
      }
      if (this.#o.prewarm > 0) this.#noteRecent([{ publicId: id, now }]);
      // The key `<prefix>{bucket}user random`, then each field present: a one-letter name and its value.
      let size = this.#o.keyPrefix.length + 2 + ID_LENGTH;
      for (const v of [userId, record.secretHash, String(now), String(now), String(absoluteAt), record.device, record.ip, record.country,
        dat, remembered ? '' : '0']) {
        if (v !== '') size += 1 + v.length;
      }
      this.metrics.sessionSize.observe(size);
      const session: Session = Object.freeze({
        id: own(id), userId, data: parseData(dat), createdAt: now, absoluteExpiresAt: absoluteAt, remembered, authenticatedAt: now,
      });
      this.#l1.fill(session.id, t, { session, proof: secret, touched: now - CLOCK_BASE, filled: 0 });
      return { session, token: `${session.id}.${secret}`, evicted };
    } finally {
      this.#l1.release(id, t);
    }
  }

  /**
   * A create that timed out after it was sent may still land. Its caller was told it failed, so
   * the session must not appear later in the device list or count toward the cap, and sessions
   * its cap eviction removed must come back: undo it once Redis answers again (an undo of a
   * create that never ran is a no-op).
   */
  #orphan(id: string): void {
    if (this.#orphans.has(id)) return;
    this.#orphans.add(id);
    void (async () => {
      for (let attempt = 0; attempt < 120 && !this.#closed; attempt++) {
        await sleep(Math.min(250 * 2 ** attempt, 5000));
        try {
          await this.#store.uncreate(id, preciseNow(), this.#o.now());
          this.#l1.invalidate([id]);
          this.#orphans.delete(id);
          return;
        } catch { /* Redis still away: try again */ }
      }
      this.#orphans.delete(id);
      this.#log.warn({ sessionId: id }, 'tiered-session: could not clean up a sign-in that timed out');
    })();
  }

  async #write<T>(fn: () => Promise<T>): Promise<T> {
    this.metrics.redisWrites++;
    try {
      return await this.#acknowledged(fn);
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
  }

  /** Run an acknowledged write, logging once when replicas stop acknowledging and once when they do again. */
  async #acknowledged<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      if (this.#unacknowledged && this.#store.acknowledgedBy !== undefined) {
        this.#unacknowledged = false;
        this.#log.info({}, 'tiered-session: replicas confirm revocations again');
      }
      return out;
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_TIERED_SESSION_NOT_CONFIRMED') {
        this.metrics.unconfirmed++;
        if (!this.#unacknowledged) {
          this.#unacknowledged = true;
          this.#log.warn({ replicas: this.#store.acknowledgedBy?.replicas, timeout: this.#store.acknowledgedBy?.timeout },
            'tiered-session: a revocation was applied on the primary but no replica confirmed it in time; it answers 503 (a failover ' +
              'could undo it)');
        }
      }
      throw err;
    }
  }

  /** Claim `name` for `ms` across instances (the takeover of an old session): true for the first caller only. */
  async claim(name: string, ms: number): Promise<boolean> {
    return this.#write(() => this.#store.claim(name, ms));
  }

  /**
   * Revoke one session. With `owner`, only when it belongs to that user (the routes' owner
   * check); unknown and foreign ids both answer false. Every instance drops it from L1.
   */
  async revoke(publicId: string, owner?: string, reason: ExplicitEndReason = 'revoked'): Promise<boolean> {
    if (!isPublicId(publicId)) return false;
    // Two checks, on purpose: the tag check keeps another user's id from ever reaching Redis;
    // the script's stored-owner check holds even for a tag collision or a caller of the store.
    if (owner !== undefined && (!isWellFormed(owner) || !this.#tagListed(publicId, owner))) return false;
    try {
      return this.#noted(publicId, await this.#write(() => this.#store.revoke(publicId, owner ?? '', preciseNow(), reason, this.#o.now())));
    } finally {
      // Applied or maybe applied (an unacknowledged or timed-out revoke): this instance forgets it either way.
      this.#l1.invalidate([publicId]);
    }
  }

  /**
   * Revoke the session a token opens (sign-out, a sign-in over a carried cookie), checked against
   * its secret on the primary: whatever this instance's cache or a replica said, a token whose
   * session was evicted by a sign-in still being undone cannot come back. False when it opened none.
   */
  async revokeToken(token: string, reason: ExplicitEndReason): Promise<boolean> {
    if (!isTokenShape(token)) return false;
    const publicId = token.slice(0, ID_LENGTH);
    const secretHash = hashSecret(token.slice(ID_LENGTH + 1));
    try {
      return this.#noted(publicId, await this.#write(() =>
        this.#store.revoke(publicId, '', preciseNow(), reason, this.#o.now(), secretHash)));
    } finally {
      this.#l1.invalidate([publicId]);
    }
  }

  /** A revocation this instance made (it may not hear its own broadcast): kept for a replay. */
  #noted(publicId: string, revoked: boolean): boolean {
    if (revoked) this.#replay.note([publicId]);
    return revoked;
  }

  /** Revoke every session of `userId` (log out everywhere, password change, ban), optionally keeping one. */
  async revokeAll(userId: string, options: { keep?: string } = {}): Promise<number> {
    // Such an id has no session (create refuses it), and its UTF-8 bytes are another user's.
    if (!isWellFormed(userId)) return 0;
    const tags = this.tagsOf(userId);
    const ids = tags.flatMap((tag) => this.#l1.idsWithPrefix(tag)).filter((k) => k !== options.keep);
    try {
      let n = 0;
      for (const tag of tags) {
        const gone = await this.#write(() => this.#store.revokeAll(tag, userId, options.keep, preciseNow(), this.#o.now()));
        this.#replay.note(gone);
        n += gone.length;
      }
      return n;
    } finally {
      // The broadcast reaches this instance too; dropping now makes the caller's next request exact.
      this.#l1.invalidate(ids);
    }
  }

  /** Give a session a new secret (privilege change). The old token stops working everywhere. */
  async rotate(publicId: string): Promise<string> {
    const secret = newSecret();
    const secretHash = hashSecret(secret);
    let count: number;
    try {
      count = await this.#write(() => this.#store.rotate(publicId, secretHash, preciseNow(), this.#o.now()));
    } finally {
      this.#l1.invalidate([publicId]);
    }
    if (count === 0) throw new ERR_NOT_FOUND();
    this.#replay.noteRotation(publicId, secretHash, count);
    return `${publicId}.${secret}`;
  }

  /** Replace a session's data. Conditional on the session still existing: it is never recreated. */
  async update(session: Session, data: SessionData): Promise<Session> {
    const dat = serialiseData(data, this.#o.maxDataBytes);
    const ok = await this.#write(() => this.#store.update(session.id, 'j', dat, preciseNow()));
    this.#l1.invalidate([session.id]);
    if (!ok) throw new ERR_NOT_FOUND();
    return Object.freeze({ ...session, data: parseData(dat) });
  }

  /**
   * The user proved their credentials again (a password prompt, a second factor): the session's
   * `authenticatedAt` moves to now, in Redis first; every instance drops its cached copy.
   */
  async reauthenticate(session: Session): Promise<Session> {
    const now = this.#o.now();
    const ok = await this.#write(() => this.#store.update(session.id, 't', String(now), preciseNow()));
    this.#l1.invalidate([session.id]);
    if (!ok) throw new ERR_NOT_FOUND();
    return Object.freeze({ ...session, authenticatedAt: now });
  }

  // ---- reads for the device list -----------------------------------------------------------

  /** A user's live sessions, most recently active first. */
  async list(userId: string): Promise<SessionInfo[]> {
    this.metrics.redisReads++;
    let rows;
    try {
      const tags = this.tagsOf(userId);
      rows = tags.length === 1 ? await this.#store.list(tags[0],
        this.#o.now()) : (await Promise.all(tags.map((tag) => this.#store.list(tag, this.#o.now())))).flat();
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
    const now = this.#o.now();
    const out: SessionInfo[] = [];
    for (const { publicId, session: s } of rows) {
      if (s.userId !== userId) continue;
      // A touch this instance has queued or is writing is activity Redis has not seen yet.
      const touched = this.#touches.pending(publicId);
      const expiresAt = Math.max(s.expiresAt, Math.min(touched + this.#idleOf(s.remembered), s.absoluteAt));
      if (expiresAt <= now) continue;
      out.push({
        id: publicId,
        userId: s.userId,
        device: decodeDevice(s.device),
        ip: s.ip ?? null,
        country: s.country ?? null,
        createdAt: s.createdAt,
        lastActiveAt: Math.max(touched, s.lastActiveAt),
        expiresAt,
        remembered: s.remembered,
      });
    }
    return out.sort((a, b) => b.lastActiveAt - a.lastActiveAt);
  }

  /** Redis answers PING within the command timeout. */
  async healthy(): Promise<boolean> {
    try {
      await this.#store.ping();
      return true;
    } catch {
      return false;
    }
  }

  stats(): StatsSnapshot { return this.metrics.snapshot(this.#l1.size, this.#l1.clears); }

  prometheus(): string {
    const text = this.metrics.prometheus(this.#l1.size, this.#l1.clears);
    return this.#audit === undefined ? text : text + auditPrometheus(this.#audit.metricsSnapshot());
  }
}

/** A pre-warmed entry holds the stored hash: one hash proves the secret, then it is cached like any other. */
function provePrewarmed(e: Entry, secret: string): boolean {
  if (!constantTimeEqual(hashSecret(secret), e.proof)) return false;
  e.proof = own(secret);
  return true;
}
