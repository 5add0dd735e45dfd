import { LRUCache } from 'lru-cache';
import type { Session } from './session-data.js';
import type { StoredSession } from './store/record.js';

/**
 * The L1 entry: three fields, and the `session` object is shared by every request that hits it.
 * Its absolute deadline is `session.absoluteExpiresAt`; its idle deadline is `touched` plus the
 * session's idle timeout, so neither needs a field of its own.
 */
export interface Entry {
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
  /** When this instance filled the entry, in ms since CLOCK_BASE (real time): it is dropped `ttl` ms later. */
  filled: number;
}

/** Times in L1 entries count from here (whole ms), so they stay small integers. */
export const CLOCK_BASE = Math.floor(performance.timeOrigin);

let turnNow = 0;
const clearTurnNow = () => { turnNow = 0; };

/**
 * Date.now(), read once per turn of the event loop: every request of a turn gets the same
 * millisecond (one clock read instead of one per request on the hot path).
 */
export function coarseNow(): number {
  if (turnNow === 0) {
    turnNow = Date.now();
    setImmediate(clearTurnNow);
  }
  return turnNow;
}

/** One options object for every lookup (lru-cache's get allocates one per call without it). */
const GET_OPTIONS = {};

/**
 * A claim to fill one id later. Whoever reads a session from Redis (a request's miss, a
 * sign-in's create, a pre-warm batch) holds a ticket from before the read starts until the
 * fill; any invalidation of that id meanwhile, and any full clear, voids it. This is the one
 * rule that keeps a revocation that overtakes a read from being undone by that read's fill.
 */
export interface Ticket {
  valid: boolean;
  holders: number;
  /** The Redis read in flight for this id: concurrent misses share it. */
  read: Promise<StoredSession | null> | undefined;
}

/**
 * The in-process cache (L1) and its fill guards. `trusted()` says whether the revocation channel
 * is proven to deliver; only then is anything filled (and a lapse clears everything).
 */
export class LocalCache {
  readonly #lru: LRUCache<string, Entry> | undefined;
  readonly #tickets = new Map<string, Ticket>();
  readonly #trusted: () => boolean;
  /** The entries' lifetime: the staleness bound under any fault (kept here on real time, not by lru-cache). */
  readonly #ttl: number;
  /**
   * Ids invalidated in the last `#tolerance` ms (insertion order is expiry order), kept only where
   * reads may come from a replica: such a replica may not have the change yet, so these ids are
   * read from the primary. 0: not kept.
   */
  readonly #recent = new Map<string, number>();
  readonly #tolerance: number;
  /** Full clears that dropped at least one entry (a metric). */
  clears = 0;

  constructor(options: { max: number; ttl: number } | false, trusted: () => boolean, replicaLagTolerance = 0) {
    this.#lru = options === false ? undefined : new LRUCache<string, Entry>({ max: options.max });
    this.#ttl = options === false ? 0 : options.ttl;
    this.#trusted = trusted;
    this.#tolerance = replicaLagTolerance;
  }

  /** Whether `id` was invalidated within the tolerated replica lag (read it from the primary). */
  recentlyInvalidated(id: string): boolean {
    if (this.#tolerance === 0) return false;
    const until = this.#recent.get(id);
    return until !== undefined && until > performance.now();
  }

  #remember(id: string): void {
    const now = performance.now();
    for (const [k, until] of this.#recent) {
      if (until > now) break;
      this.#recent.delete(k);
    }
    this.#recent.delete(id);
    this.#recent.set(id, now + this.#tolerance);
  }

  get enabled(): boolean { return this.#lru !== undefined; }
  get size(): number { return this.#lru?.size ?? 0; }

  /** The hot path: a plain lookup; `now` is real time (coarseNow()). An entry past its ttl is gone. */
  get(id: string, now: number): Entry | undefined {
    const e = this.#lru?.get(id, GET_OPTIONS);
    if (e !== undefined && now - CLOCK_BASE - e.filled >= this.#ttl) {
      this.#lru!.delete(id);
      return undefined;
    }
    return e;
  }

  delete(id: string): void { this.#lru?.delete(id); }

  /** Ids cached for one user tag (log-out-everywhere drops them before its broadcast returns). */
  idsWithPrefix(tag: string): string[] {
    if (this.#lru === undefined) return [];
    const out: string[] = [];
    for (const k of this.#lru.keys()) if (k.startsWith(tag)) out.push(k);
    return out;
  }

  /** Take (or share) the ticket for `id`. Release it with `release()` when done. */
  hold(id: string): Ticket {
    let t = this.#tickets.get(id);
    if (t === undefined) {
      t = { valid: true, holders: 0, read: undefined };
      this.#tickets.set(id, t);
    }
    t.holders++;
    return t;
  }

  release(id: string, t: Ticket): void {
    if (--t.holders === 0 && this.#tickets.get(id) === t) this.#tickets.delete(id);
  }

  /** Fill `id` when its ticket is still valid and the channel is trusted. */
  fill(id: string, t: Ticket, e: Entry): boolean {
    if (!t.valid || this.#lru === undefined || !this.#trusted()) return false;
    e.filled = coarseNow() - CLOCK_BASE;
    this.#lru.set(id, e);
    return true;
  }

  /** Drop ids and void every ticket held for them. */
  invalidate(ids: Iterable<string>): void {
    for (const id of ids) {
      if (this.#tolerance > 0) this.#remember(id);
      this.#lru?.delete(id);
      const t = this.#tickets.get(id);
      if (t !== undefined) {
        t.valid = false;
        this.#tickets.delete(id);
      }
    }
  }

  /** Drop everything and void every ticket (the channel may have lost messages). */
  clear(): void {
    if (this.#lru !== undefined && this.#lru.size > 0) this.clears++;
    this.#lru?.clear();
    for (const t of this.#tickets.values()) t.valid = false;
    this.#tickets.clear();
  }
}

/** An L1 entry for a session read from Redis; `proof` is its secret, or its stored hash (pre-warm). */
export function entryOf(session: Session, s: StoredSession, proof: string): Entry {
  return { session, proof, touched: s.lastActiveAt - CLOCK_BASE, filled: 0 };
}
