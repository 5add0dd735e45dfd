// Resolving: a cookie's token to its session, from the local cache (L1) first and Redis second;
// the reads behind a miss (from the primary when a replica may lag), the pre-warm of the L1, the
// throttled touches of last-active, and the device list read. The L1 hit (resolveAt) is the hot
// path: the token read in place from the Cookie header, no allocation, no Redis command.
import { coarseNow, type LocalCache, type Ticket } from './local-cache.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { RevocationReplay } from './replay.js';
import { decodeDevice, parseData, type Session, type SessionInfo } from './session-data.js';
import { idleOf, own, sleep, type SessionParts } from './session-parts.js';
import type { Freshness } from './store/freshness.js';
import type { StoredSession } from './store/record.js';
import type { RedisStore } from './store/redis-store.js';
import { TouchQueue, type Touch } from './touch-queue.js';
import type { UserTags } from './user-tags.js';
import {
  ID_LENGTH, TOKEN_LENGTH, constantTimeEqual, hashSecret, isPublicId, isTokenShape,
} from './token.js';

export class Resolving {
  readonly #o: ResolvedOptions;
  readonly #store: RedisStore;
  readonly #l1: LocalCache;
  readonly #log: Logger;
  readonly #replay: RevocationReplay;
  readonly #tags: UserTags;
  readonly #touches: TouchQueue;
  readonly #fresh: Freshness | undefined;
  readonly #trustedNow: () => boolean;
  readonly #closed: () => boolean;
  /** The clock of the hot path: read once per turn when it is the real one. */
  readonly #hotNow: () => number;
  readonly metrics: Metrics;

  constructor(p: SessionParts, fresh: Freshness | undefined) {
    this.#o = p.o;
    this.#store = p.store;
    this.#l1 = p.l1;
    this.#log = p.log;
    this.#replay = p.replay;
    this.#tags = p.tags;
    this.metrics = p.metrics;
    this.#fresh = fresh;
    this.#trustedNow = p.trusted;
    this.#closed = p.closed;
    this.#hotNow = p.o.now === Date.now ? coarseNow : p.o.now;
    this.#touches = new TouchQueue((items) => this.#writeTouches(items));
  }

  /** Whether a session id carries its user's tag under a listed secret. */
  #tagListed(id: string, userId: string): boolean { return this.#tags.listed(id, userId); }

  /** Write what is queued and stop. */
  close(): Promise<void> { return this.#touches.close(); }

  /**
   * Resolve a cookie value. Synchronous on an L1 hit (no promise, no allocation); a promise on a
   * miss. Null for anything that is not a live session, and no Redis call for a value that cannot
   * be a token.
   */
  resolve(token: string): Session | null | Promise<Session | null> {
    return token.length === TOKEN_LENGTH ? this.resolveAt(token, 0) : null;
  }

  /**
   * resolve() of the token that starts at `at` in `s` (a Cookie header, the caller having found a
   * value of a token's length there): a hit reads it in place; a miss slices the id and secret.
   */
  resolveAt(s: string, at: number): Session | null | Promise<Session | null> {
    // The dot only here: a hit then compares the secret exactly; the full shape check runs
    // before any Redis call.
    if (s.charCodeAt(at + ID_LENGTH) !== 46) return null;
    const now = this.#hotNow();
    const l1 = this.#l1;
    const slot = l1.find(s, at, this.#hotNow === coarseNow ? now : coarseNow());
    if (slot >= 0 && l1.proves(slot, s, at)) {
      const since = now - l1.touchedAt(slot);
      if (since < (l1.remembered(slot) ? this.#o.idleTimeout : this.#o.shortSession.idleTimeout) && now < l1.absoluteAt(slot)) {
        this.metrics.l1Hits++;
        const session = l1.session(slot);
        if (since >= this.#o.touchInterval) {
          l1.setTouched(slot, now);
          this.#touches.queue(session.id, now);
        }
        return session;
      }
      // Idle here may not be idle everywhere (other instances touch too): ask Redis.
      l1.deleteSlot(slot);
    }
    // A wrong secret for a cached id is answered from Redis, exactly as for an uncached id: the
    // timing does not tell whether the id is cached, and a rotation whose broadcast has not
    // arrived yet is honoured at once (the new secret refills the entry).
    const token = at === 0 && s.length === TOKEN_LENGTH ? s : s.slice(at, at + TOKEN_LENGTH);
    if (!isTokenShape(token)) return null;
    this.metrics.l1Misses++;
    return this.#load(token.slice(0, ID_LENGTH), token.slice(ID_LENGTH + 1));
  }

  async #load(id: string, secret: string): Promise<Session | null> {
    const t = this.#l1.hold(id);
    try {
      t.read ??= this.#read(id);
      const s = await t.read;
      if (s === null || !constantTimeEqual(hashSecret(secret), s.secretHash) || !this.#tagListed(id, s.userId)) return null;
      // A revocation or rotation this instance answered, missing from what Redis holds now.
      if (this.#replay.lost(id, s.rotations)) return null;
      const now = this.#o.now();
      if (now >= s.absoluteAt || now >= s.expiresAt) return null;
      const session = this.#sessionOf(own(id), s);
      let touched = s.lastActiveAt;
      if (now - touched >= this.#o.touchInterval) {
        touched = now;
        this.#touches.queue(session.id, now);
      }
      this.#l1.fill(t, session, own(secret), touched, true);
      return session;
    } finally {
      this.#l1.release(id, t);
    }
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
      remembered: s.remembered, authenticatedAt: s.authenticatedAt, newDevice: s.newDevice,
    });
  }

  /** Wait until the channel is proven (at most two heartbeats, and at least 2 s); whether it is. */
  async trusted(): Promise<boolean> {
    const until = Date.now() + Math.max(2000, 2 * this.#o.heartbeatInterval);
    while (!this.#trustedNow() && Date.now() < until && !this.#closed()) await sleep(10);
    return this.#trustedNow();
  }

  /**
   * Fill L1 with the most recently active sessions: one ZREVRANGE, then pipelined reads in
   * batches. Only once the channel is proven, and each id under a ticket taken before its
   * read, so an id invalidated while the reads are in flight is not filled.
   */
  async prewarm(n: number): Promise<number> {
    if (!(await this.trusted())) return 0;
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
          if (s === null || now >= s.absoluteAt || now >= s.expiresAt || this.#l1.has(id, coarseNow()) ||
            !this.#tagListed(id, s.userId)
            || this.#replay.lost(id, s.rotations)) return;
          if (this.#l1.fill(tickets[k], this.#sessionOf(id, s), s.secretHash, s.lastActiveAt)) filled++;
        });
      } finally {
        batch.forEach((id, k) => this.#l1.release(id, tickets[k]));
      }
      if (!this.#trustedNow()) break;
    }
    return filled;
  }

  /** Write every queued touch now, in one pipeline (one per user slot on a Cluster). */
  flushTouches(): Promise<void> { return this.#touches.flush(); }

  async #writeTouches(items: Touch[]): Promise<void> {
    if (this.#o.prewarm > 0) this.noteRecent(items);
    this.metrics.redisWrites++;
    try {
      this.metrics.touchesWritten += await this.#store.touch(items);
    } catch (err) {
      this.metrics.redisErrors++;
      this.#log.debug({ err }, 'tiered-session: touch batch failed');
    }
  }

  noteRecent(items: Touch[]): void {
    this.metrics.redisWrites++;
    this.#store.noteRecent(items, this.#o.prewarm, this.#o.idleTimeout).catch((err) => {
      this.metrics.redisErrors++;
      this.#log.debug({ err }, 'tiered-session: recent-set update failed');
    });
  }

  /** A user's live sessions, most recently active first. */
  async list(userId: string): Promise<SessionInfo[]> {
    this.metrics.redisReads++;
    let rows;
    try {
      const tags = this.#tags.of(userId);
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
      const expiresAt = Math.max(s.expiresAt, Math.min(touched + idleOf(this.#o, s.remembered), s.absoluteAt));
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
        newDevice: s.newDevice,
      });
    }
    return out.sort((a, b) => b.lastActiveAt - a.lastActiveAt);
  }
}
