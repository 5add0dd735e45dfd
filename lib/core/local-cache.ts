import { PackedTable } from './packed-table.js';
import type { Session } from './session-data.js';
import type { StoredSession } from './store/record.js';
import { ID_LENGTH, SECRET_LENGTH, constantTimeEqual, hashSecret } from './token.js';

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
  readonly #table: PackedTable | undefined;
  readonly #tickets = new Map<string, Ticket>();
  readonly #trusted: () => boolean;
  /** The entries' lifetime: the staleness bound under any fault (real time). */
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
    this.#table = options === false ? undefined : new PackedTable(options.max);
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

  get enabled(): boolean { return this.#table !== undefined; }
  get size(): number { return this.#table?.size ?? 0; }

  /**
   * The hot path: the slot of the id at `at` in `s` (read in place), most recently used from now,
   * or -1; `now` is real time (coarseNow()). An entry past its ttl is gone.
   */
  find(s: string, at: number, now: number): number {
    const tb = this.#table;
    if (tb === undefined) return -1;
    const slot = tb.find(s, at);
    if (slot < 0) return -1;
    if (now - tb.filledAt(slot) >= this.#ttl) {
      tb.deleteSlot(slot);
      return -1;
    }
    tb.use(slot);
    return slot;
  }

  /**
   * Whether the token at `at` in `s` carries the slot's secret: compared in constant time; a
   * pre-warmed slot (the stored hash) is proven by hashing once, then keeps the secret.
   */
  proves(slot: number, s: string, at: number): boolean {
    const tb = this.#table!;
    const from = at + ID_LENGTH + 1;
    if (!tb.hashed(slot)) return tb.secretMatches(slot, s, from);
    const secret = s.slice(from, from + SECRET_LENGTH);
    if (!constantTimeEqual(hashSecret(secret), tb.storedHash(slot))) return false;
    tb.proven(slot, secret);
    return true;
  }

  /** The slot's fields, for the hot path's checks. */
  remembered(slot: number): boolean { return this.#table!.remembered(slot); }
  absoluteAt(slot: number): number { return this.#table!.absoluteAt(slot); }
  touchedAt(slot: number): number { return this.#table!.touchedAt(slot); }
  setTouched(slot: number, at: number): void { this.#table!.setTouched(slot, at); }
  session(slot: number): Session { return this.#table!.session(slot); }
  deleteSlot(slot: number): void { this.#table!.deleteSlot(slot); }

  /** Whether `id` is cached (and within its ttl). */
  has(id: string, now: number): boolean { return this.find(id, 0, now) >= 0; }

  delete(id: string): void { this.#table?.delete(id); }

  /** Ids cached for one user tag (log-out-everywhere drops them before its broadcast returns). */
  idsWithPrefix(tag: string): string[] {
    return this.#table?.idsWithPrefix(tag) ?? [];
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

  /**
   * Fill `session` when its ticket is still valid and the channel is trusted. `proof` is its
   * secret (43 characters), or its stored hash (a pre-warm: 22); `touchedAt` its last activity.
   * `keep`: keep the object built for the next hits (packed-table.ts: an L1 miss's, not a sign-in's).
   */
  fill(t: Ticket, session: Session, proof: string, touchedAt: number, keep = false): boolean {
    if (!t.valid || this.#table === undefined || !this.#trusted()) return false;
    this.#table.set(session, proof, touchedAt, coarseNow(), keep);
    return true;
  }

  /** Drop ids and void every ticket held for them. */
  invalidate(ids: Iterable<string>): void {
    for (const id of ids) {
      if (this.#tolerance > 0) this.#remember(id);
      this.#table?.delete(id);
      const t = this.#tickets.get(id);
      if (t !== undefined) {
        t.valid = false;
        this.#tickets.delete(id);
      }
    }
  }

  /** Drop everything and void every ticket (the channel may have lost messages). */
  clear(): void {
    if (this.#table !== undefined && this.#table.size > 0) this.clears++;
    this.#table?.clear();
    for (const t of this.#tickets.values()) t.valid = false;
    this.#tickets.clear();
  }
}
