import { LRUCache } from 'lru-cache';
import { ERR_BAD_USER_ID, ERR_DATA_NOT_SERIALIZABLE, ERR_DATA_TOO_LARGE, ERR_NOT_FOUND } from './errors.js';
import type { DeviceInfo } from './device.js';
import { Metrics, type StatsSnapshot } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { RedisStore, type NewRecord, type StoredSession } from './store/redis-store.js';
import { RevocationChannel } from './store/channel.js';
import {
  ID_LENGTH, SECRET_LENGTH, TAG_LENGTH, constantTimeEqual, hashSecret, isPublicId, isTokenShape, newRandomAndSecret, newSecret, userTag, TOKEN_LENGTH,
} from './token.js';

/**
 * The app's own per-session data. Augment it to type `request.session.data`:
 *
 * ```ts
 * declare module 'fastify-tiered-session' {
 *   interface SessionData { role?: 'admin' | 'user' }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SessionData {}

/** The session a request resolved to. Immutable: change data with `request.updateSession()`. */
export interface Session {
  /** Public id: shown in the device list, used by the revoke route. Not a credential. */
  readonly id: string;
  readonly userId: string;
  readonly data: Readonly<SessionData>;
  /** Epoch ms. */
  readonly createdAt: number;
  /** Epoch ms: the session ends then, however active it is. */
  readonly absoluteExpiresAt: number;
}

/** One entry of a user's device list. Times are epoch ms. */
export interface SessionInfo {
  id: string;
  userId: string;
  device: DeviceInfo;
  ip: string | null;
  country: string | null;
  createdAt: number;
  lastActiveAt: number;
  expiresAt: number;
}

export interface CreateInput {
  device: DeviceInfo;
  ip?: string | null;
  country?: string | null;
  data?: SessionData;
}

/**
 * The L1 entry: three fields, and the `session` object is shared by every request that hits it.
 * Its absolute deadline is `session.absoluteExpiresAt`; its idle deadline is `touched` plus
 * `idleTimeout`, so neither needs a field of its own.
 */
interface Entry {
  readonly session: Session;
  /**
   * The secret itself (43 chars), compared in constant time on a hit: no hashing on the hot path.
   * A pre-warmed entry holds the stored secret hash instead (22 chars) until its first request
   * proves the secret against it; the lengths tell the two apart.
   */
  proof: string;
  /**
   * Last activity as this instance knows it, in ms since CLOCK_BASE: a small integer that V8
   * keeps inline (no boxed double per entry) for the first ~24 days of a process.
   */
  touched: number;
}

interface Inflight {
  readonly promise: Promise<StoredSession | null>;
  /** Cleared by an invalidation that arrives while the read is in flight: the read must not fill. */
  valid: boolean;
}

/** Times in L1 entries count from here (whole ms), so they stay small integers. */
const CLOCK_BASE = Math.floor(performance.timeOrigin);

/** Epoch milliseconds with sub-millisecond precision: revocation latency is measured in µs. */
const preciseNow = () => performance.timeOrigin + performance.now();

/**
 * A flat copy of a string. Slices of a request's Cookie header would keep the whole header
 * alive for as long as the L1 entry lives; entries hold copies instead (misses only).
 */
const own = (s: string) => Buffer.from(s, 'latin1').toString('latin1');

const UNKNOWN_DEVICE: DeviceInfo = Object.freeze({ name: 'Unknown device', browser: null, os: null, type: null });
const EMPTY_DATA: Readonly<SessionData> = Object.freeze({});

/** Validate session data as plain JSON and return its serialised form. */
function serialiseData(data: unknown, maxBytes: number): string {
  const check = (v: unknown, path: string, depth: number): void => {
    if (depth > 32) throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is nested too deeply`);
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is ${v}`);
      return;
    }
    if (Array.isArray(v)) { v.forEach((x, i) => check(x, `${path}[${i}]`, depth + 1)); return; }
    if (typeof v === 'object') {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is a ${proto?.constructor?.name ?? 'non-plain object'}`);
      for (const k of Object.keys(v)) {
        if (k === '__proto__') throw new ERR_DATA_NOT_SERIALIZABLE(`${path} has a "__proto__" key`);
        check((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
      }
      return;
    }
    throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is a ${typeof v}`);
  };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ERR_DATA_NOT_SERIALIZABLE('data must be an object');
  }
  check(data, 'data', 0);
  const json = JSON.stringify(data);
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) throw new ERR_DATA_TOO_LARGE(bytes, maxBytes);
  return json === '{}' ? '' : json;
}

function parseData(json: string | undefined): Readonly<SessionData> {
  if (!json) return EMPTY_DATA;
  try {
    return Object.freeze(JSON.parse(json) as SessionData);
  } catch {
    return EMPTY_DATA;
  }
}

/** The device record: its four fields joined by \x1f (a control character parseDevice never emits). */
const SEP = '\x1f';
const field = (f: string | null) => (f === null ? '' : f.includes(SEP) ? f.replaceAll(SEP, ' ') : f);
const encodeDevice = (d: DeviceInfo) => `${field(d.name)}${SEP}${field(d.browser)}${SEP}${field(d.os)}${SEP}${field(d.type)}`;

function decodeDevice(record: string | undefined): DeviceInfo {
  if (!record) return UNKNOWN_DEVICE;
  const [name, browser, os, type] = record.split(SEP);
  return { name: name || 'Unknown device', browser: browser || null, os: os || null, type: type || null };
}

/**
 * The session manager: the Redis model (L2), the in-process cache (L1), the revocation
 * channel and the throttled touch queue. One per plugin registration; `app.sessions` exposes it.
 */
export class SessionManager {
  readonly #o: ResolvedOptions;
  readonly #store: RedisStore;
  readonly #l1: LRUCache<string, Entry> | undefined;
  readonly #channel: RevocationChannel | undefined;
  readonly #inflight = new Map<string, Inflight>();
  /** Touches queued (public id → when), and the batch being written. */
  #touches = new Map<string, number>();
  #writing: Map<string, number> | undefined;
  #touchTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #closed = false;
  /** Ids invalidated while a pre-warm is reading. */
  #spoiled: Set<string> | undefined;
  /** Bumped by every full clear: a pre-warm that sees it change stops filling. */
  #clears = 0;
  readonly metrics = new Metrics();
  /** Reports background failures (touch batches); the plugin points it at the app's logger. */
  onBackgroundError: (err: unknown, what: string) => void = () => {};

  constructor(options: ResolvedOptions) {
    this.#o = options;
    this.#store = new RedisStore(options.client, options.keyPrefix, options.commandTimeout, options.idleTimeout);
    if (options.localCache) {
      this.#l1 = new LRUCache<string, Entry>({ max: options.localCache.max, ttl: options.localCache.ttl });
      this.#channel = new RevocationChannel(
        options.client, this.#store.channel, options.heartbeatInterval,
        (msg) => this.#store.publish(msg),
        {
          onRevoked: (ids, sentAt) => this.#received(ids, sentAt),
          onInterrupted: () => this.#clearL1(),
        },
      );
    }
  }

  /** The Redis model underneath (keys, scripts): for tests and tools. */
  get store(): RedisStore { return this.#store; }

  /** The channel is proven to deliver, so the local cache may serve and be filled. */
  get cacheTrusted(): boolean { return this.#channel?.confirmed === true; }

  async start(): Promise<void> {
    await this.#channel?.start();
    if (this.#o.prewarm > 0 && this.#l1 !== undefined) {
      try {
        await this.#prewarm(this.#o.prewarm);
      } catch (err) {
        this.onBackgroundError(err, 'pre-warm');
      }
    }
  }

  /**
   * Fill L1 with the most recently active sessions: one ZREVRANGE, then pipelined reads in
   * batches. Only once the channel is confirmed (a confirmation clears L1), and an id
   * invalidated while the reads are in flight is not filled.
   */
  async #prewarm(n: number): Promise<number> {
    const until = Date.now() + Math.max(2000, 2 * this.#o.heartbeatInterval);
    while (!this.cacheTrusted && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    if (!this.cacheTrusted) return 0;
    const ids = (await this.#store.recent(n)).filter(isPublicId);
    const spoiled = new Set<string>();
    this.#spoiled = spoiled;
    const clears = this.#clears;
    let filled = 0;
    try {
      for (let i = 0; i < ids.length; i += 500) {
        const batch = ids.slice(i, i + 500);
        this.metrics.redisReads++;
        const rows = await this.#store.readMany(batch);
        if (this.#clears !== clears || !this.cacheTrusted) return filled;
        const now = this.#o.now();
        rows.forEach((s, k) => {
          const id = batch[k];
          if (s === null || spoiled.has(id) || now >= s.absoluteAt || now >= s.expiresAt || this.#l1!.has(id)) return;
          this.#l1!.set(id, entryOf(id, s, s.secretHash));
          filled++;
        });
      }
    } finally {
      this.#spoiled = undefined;
    }
    return filled;
  }

  /** Flush pending touches and close the subscriber. The app's own client is left open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flushTouches();
    await this.#channel?.stop();
    this.#clearL1();
  }

  /** The user's hash tag: every key of the user carries it. */
  tagOf(userId: string): string { return userTag(this.#o.keyPrefix, userId); }

  // ---- resolve ---------------------------------------------------------------------------

  /**
   * Resolve a cookie value. Synchronous on an L1 hit (no promise, no
   * allocation beyond the id); a promise on a miss. Null for anything that is not a live
   * session, and no Redis call for a value that cannot be a token.
   */
  resolve(token: string): Entry | null | Promise<Entry | null> {
    // Length and dot only here: a hit then compares the secret exactly; the full shape check
    // runs before any Redis call.
    if (token.length !== TOKEN_LENGTH || token.charCodeAt(ID_LENGTH) !== 46) return null;
    const id = token.slice(0, ID_LENGTH);
    const l1 = this.#l1;
    if (l1 !== undefined) {
      const e = l1.get(id);
      if (e !== undefined) {
        let proven: boolean;
        if (e.proof.length === SECRET_LENGTH) proven = secretMatches(e.proof, token);
        else {
          // Pre-warmed: one hash proves the secret, then it is cached like any other entry.
          const secret = token.slice(ID_LENGTH + 1);
          proven = constantTimeEqual(hashSecret(secret), e.proof);
          if (proven) e.proof = own(secret);
        }
        // A wrong secret for a cached id is refused here, without a Redis read. (A rotation
        // whose broadcast was lost is the one honest case; the heartbeat clears L1 within
        // heartbeatInterval of any lost message.)
        if (!proven) return null;
        const now = this.#o.now();
        const since = now - CLOCK_BASE - e.touched;
        if (since < this.#o.idleTimeout && now < e.session.absoluteExpiresAt) {
          this.metrics.l1Hits++;
          if (since >= this.#o.touchInterval) this.#queueTouch(e, now);
          return e;
        }
        // Idle here may not be idle everywhere (other instances touch too): ask Redis.
        l1.delete(id);
      }
    }
    if (!isTokenShape(token)) return null;
    this.metrics.l1Misses++;
    return this.#load(id, token.slice(ID_LENGTH + 1));
  }

  async #load(id: string, secret: string): Promise<Entry | null> {
    let f = this.#inflight.get(id);
    if (f === undefined) {
      const promise = this.#read(id);
      const mine: Inflight = { promise, valid: true };
      f = mine;
      this.#inflight.set(id, mine);
      void promise.then(() => { if (this.#inflight.get(id) === mine) this.#inflight.delete(id); }, () => {
        if (this.#inflight.get(id) === mine) this.#inflight.delete(id);
      });
    }
    const s = await f.promise;
    if (s === null || !constantTimeEqual(hashSecret(secret), s.secretHash)) return null;
    const now = this.#o.now();
    if (now >= s.absoluteAt || now >= s.expiresAt) return null;
    const e = entryOf(own(id), s, own(secret));
    if (now - CLOCK_BASE - e.touched >= this.#o.touchInterval) this.#queueTouch(e, now);
    if (f.valid && this.#l1 !== undefined && this.cacheTrusted) this.#l1.set(e.session.id, e);
    return e;
  }

  async #read(id: string): Promise<StoredSession | null> {
    this.metrics.redisReads++;
    try {
      return await this.#store.read(id);
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
  }

  // ---- touches ---------------------------------------------------------------------------

  #queueTouch(e: Entry, now: number): void {
    e.touched = now - CLOCK_BASE;
    this.#touches.set(e.session.id, now);
    if (this.#touchTimer === undefined && !this.#closed) {
      this.#touchTimer = setTimeout(() => { void this.flushTouches(); }, 5);
    }
  }

  /** Write every queued touch now, in one pipeline (one per user slot on a Cluster). */
  async flushTouches(): Promise<void> {
    clearTimeout(this.#touchTimer);
    this.#touchTimer = undefined;
    await this.#flushing;
    if (this.#touches.size === 0) return;
    const items = [...this.#touches].map(([publicId, now]) => ({ publicId, now }));
    this.#writing = this.#touches;
    this.#touches = new Map();
    if (this.#o.prewarm > 0) this.#noteRecent(items);
    this.metrics.redisWrites++;
    this.#flushing = this.#store.touch(items).then(
      (n) => { this.metrics.touchesWritten += n; },
      (err) => { this.metrics.redisErrors++; this.onBackgroundError(err, 'touch'); },
    ).finally(() => { this.#flushing = undefined; this.#writing = undefined; });
    await this.#flushing;
  }

  #noteRecent(items: { publicId: string; now: number }[]): void {
    this.metrics.redisWrites++;
    this.#store.noteRecent(items, this.#o.prewarm, this.#o.idleTimeout).catch((err) => {
      this.metrics.redisErrors++;
      this.onBackgroundError(err, 'recent-set update');
    });
  }

  // ---- coherence -------------------------------------------------------------------------

  /** Drop ids from L1 and spoil any read of them that is in flight. */
  invalidate(ids: Iterable<string>): void {
    for (const id of ids) {
      this.#l1?.delete(id);
      this.#spoiled?.add(id);
      const f = this.#inflight.get(id);
      if (f !== undefined) { f.valid = false; this.#inflight.delete(id); }
    }
  }

  #received(ids: string[], sentAt: number): void {
    this.invalidate(ids);
    this.metrics.revocationsReceived += ids.length;
    if (Number.isFinite(sentAt)) this.metrics.revocationLatency.observe(Math.max(0, preciseNow() - sentAt) / 1000);
  }

  #clearL1(): void {
    this.#clears++;
    if (this.#l1 !== undefined && this.#l1.size > 0) this.metrics.l1Clears++;
    this.#l1?.clear();
    for (const f of this.#inflight.values()) f.valid = false;
    this.#inflight.clear();
  }

  // ---- writes ----------------------------------------------------------------------------

  /** Create a session for `userId`. Returns the session and the token (for the cookie only). */
  async create(userId: string, input: CreateInput): Promise<{ session: Session; token: string; evicted: string[] }> {
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > 512) {
      throw new ERR_BAD_USER_ID('expected a non-empty string of at most 512 characters');
    }
    const dat = input.data === undefined ? '' : serialiseData(input.data, this.#o.maxDataBytes);
    const now = this.#o.now();
    const tag = this.tagOf(userId);
    const { random, secret } = newRandomAndSecret();
    const absoluteAt = now + this.#o.absoluteTimeout;
    const ttl = Math.min(this.#o.idleTimeout, this.#o.absoluteTimeout);
    const record: NewRecord = {
      userId, secretHash: hashSecret(secret), absoluteAt, device: encodeDevice(input.device),
      ip: input.ip || '', country: input.country || '', data: dat,
    };
    this.metrics.redisWrites++;
    let evicted: string[];
    try {
      evicted = await this.#store.create(tag, random, now, ttl, this.#o.maxSessionsPerUser, record);
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
    this.invalidate(evicted);
    if (this.#o.prewarm > 0) this.#noteRecent([{ publicId: tag + random, now }]);
    // The key `<prefix>{tag}random`, then each field present: a one-letter name and its value.
    let size = this.#o.keyPrefix.length + 2 + ID_LENGTH;
    for (const v of [userId, record.secretHash, String(now), String(now), String(absoluteAt), record.device, record.ip, record.country, dat]) {
      if (v !== '') size += 1 + v.length;
    }
    this.metrics.sessionSize.observe(size);
    const session: Session = Object.freeze({ id: own(tag + random), userId, data: parseData(dat), createdAt: now, absoluteExpiresAt: absoluteAt });
    if (this.#l1 !== undefined && this.cacheTrusted) {
      this.#l1.set(session.id, { session, proof: secret, touched: now - CLOCK_BASE });
    }
    return { session, token: `${session.id}.${secret}`, evicted };
  }

  async #write<T>(fn: () => Promise<T>): Promise<T> {
    this.metrics.redisWrites++;
    try {
      return await fn();
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
  }

  /**
   * Revoke one session. With `owner`, only when it belongs to that user (the routes' owner
   * check); unknown and foreign ids both answer false. Every instance drops it from L1.
   */
  async revoke(publicId: string, owner?: string): Promise<boolean> {
    if (!isPublicId(publicId)) return false;
    if (owner !== undefined && publicId.slice(0, TAG_LENGTH) !== this.tagOf(owner)) return false;
    const ok = await this.#write(() => this.#store.revoke(publicId, owner ?? '', preciseNow()));
    this.invalidate([publicId]);
    return ok;
  }

  /** Revoke every session of `userId` (log out everywhere, password change, ban), optionally keeping one. */
  async revokeAll(userId: string, options: { keep?: string } = {}): Promise<number> {
    const tag = this.tagOf(userId);
    const ids = this.#l1 !== undefined ? [...this.#l1.keys()].filter((k) => k.startsWith(tag) && k !== options.keep) : [];
    const n = await this.#write(() => this.#store.revokeAll(tag, userId, options.keep, preciseNow()));
    // The broadcast reaches this instance too; dropping now makes the caller's next request exact.
    this.invalidate(ids);
    return n;
  }

  /** Give a session a new secret (privilege change). The old token stops working everywhere. */
  async rotate(publicId: string): Promise<string> {
    const secret = newSecret();
    const ok = await this.#write(() => this.#store.update(publicId, 'h', hashSecret(secret), preciseNow()));
    this.invalidate([publicId]);
    if (!ok) throw new ERR_NOT_FOUND();
    return `${publicId}.${secret}`;
  }

  /** Replace a session's data. Conditional on the session still existing: it is never recreated. */
  async update(session: Session, data: SessionData): Promise<Session> {
    const dat = serialiseData(data, this.#o.maxDataBytes);
    const ok = await this.#write(() => this.#store.update(session.id, 'j', dat, preciseNow()));
    this.invalidate([session.id]);
    if (!ok) throw new ERR_NOT_FOUND();
    return Object.freeze({ ...session, data: parseData(dat) });
  }

  // ---- reads for the device list -----------------------------------------------------------

  /** A user's live sessions, most recently active first. */
  async list(userId: string): Promise<SessionInfo[]> {
    this.metrics.redisReads++;
    let rows;
    try {
      rows = await this.#store.list(this.tagOf(userId), this.#o.now());
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
    const now = this.#o.now();
    return rows
      .filter(({ session: s }) => s.userId === userId)
      .map(({ publicId, session: s }) => {
        // A touch this instance has queued or is writing is activity Redis has not seen yet.
        const touched = this.#touches.get(publicId) ?? this.#writing?.get(publicId) ?? 0;
        return {
          id: publicId,
          userId: s.userId,
          device: decodeDevice(s.device),
          ip: s.ip ?? null,
          country: s.country ?? null,
          createdAt: s.createdAt,
          lastActiveAt: Math.max(touched, s.lastActiveAt),
          expiresAt: Math.max(s.expiresAt, Math.min(touched + this.#o.idleTimeout, s.absoluteAt)),
        };
      })
      .filter((s) => s.expiresAt > now)
      .sort((a, b) => b.lastActiveAt - a.lastActiveAt);
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

  stats(): StatsSnapshot { return this.metrics.snapshot(this.#l1?.size ?? 0); }

  prometheus(): string { return this.metrics.prometheus(this.#l1?.size ?? 0); }
}

/** An L1 entry for a session read from Redis; `proof` is its secret, or its stored hash (pre-warm). */
function entryOf(id: string, s: StoredSession, proof: string): Entry {
  return {
    session: Object.freeze({ id, userId: s.userId, data: parseData(s.data), createdAt: s.createdAt, absoluteExpiresAt: s.absoluteAt }),
    proof,
    touched: s.lastActiveAt - CLOCK_BASE,
  };
}

/** Constant-time comparison of the cached secret with the token's secret part, in place. */
function secretMatches(secret: string, token: string): boolean {
  let diff = secret.length ^ (token.length - ID_LENGTH - 1);
  for (let i = 0; i < secret.length; i++) diff |= secret.charCodeAt(i) ^ token.charCodeAt(ID_LENGTH + 1 + i);
  return diff === 0;
}
