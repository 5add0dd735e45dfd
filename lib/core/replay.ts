import type { Logger } from './log.js';
import type { Change } from './store/channel.js';

/** How long a revocation is kept for a replay: longer than a failover and its aftermath. */
const WINDOW_MS = 60_000;
/** At most this many ids are kept (the oldest go first). */
const MAX_IDS = 100_000;
/** After a pass that applied everything, the next one (a demotion can follow the first pass). */
const FOLLOW_UP_MS = 5_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** How a replay applies what it kept: both idempotent, neither waits for replicas. */
export interface ReplayTarget {
  revoke(publicId: string): Promise<unknown>;
  /** Set the secret hash again, only where the session's rotation count is below `count`. */
  rotate(publicId: string, secretHash: string, count: number): Promise<unknown>;
}

/**
 * A kept change: a revocation (`count` 0), or the latest rotation of a live session (its count;
 * `secretHash` when this instance made it). `own`: this instance answered it.
 */
type Kept = { at: number; own: boolean; count: number; secretHash?: string };

/**
 * The last minute's revocations and rotations, so that Redis losing one cannot bring a session
 * back.
 *
 * Why: Redis replication is asynchronous, and WAIT does not make it consistent. Under Sentinel a
 * primary stalled long enough to be failed over can come back, go on taking writes (clients
 * still connected to it) and have them confirmed by a replica not yet moved to the new primary,
 * until Sentinel demotes it, seconds later: everything written there meanwhile is gone, and the
 * sessions it ended live again on the new primary (the fault check's Sentinel × stall cell).
 *
 * What is kept: the changes this instance answered (revocations, and rotations with their new
 * secret hash), and the ones it heard on the channel (revocations, and rotation counts). A
 * session Redis answers without a kept change is refused (`lost`), whoever asks; the change
 * is applied again at once: every kept revocation can be (it is final, and idempotent), a
 * rotation only by the instance that made it (it alone knows the secret). After the connection
 * to Redis was interrupted (the channel lost a subscriber, or the client reconnected: Sentinel
 * kills a demoted node's clients) this instance's own changes are applied again, and once more
 * a few seconds later. A rotation applies only where the session's rotation count shows it
 * lost, never over a later one. A session id is never reused, so none of this can end a
 * session a user was not told had ended.
 */
export class RevocationReplay {
  /** id → what was done and when (ms); insertion order is time order. */
  readonly #kept = new Map<string, Kept>();
  readonly #target: ReplayTarget;
  readonly #log: Logger;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(target: ReplayTarget, log: Logger) {
    this.#target = target;
    this.#log = log;
  }

  /** Ids this instance revoked now (answered as revoked). */
  note(ids: Iterable<string>, now = Date.now()): void {
    for (const id of ids) this.#keep(id, { at: now, own: true, count: 0 }, now);
  }

  /**
   * Ids a sign-in's cap eviction just ended, before the eviction is acknowledged: kept from now
   * (a failover while the acknowledgement is awaited may bring one back). Answers how to take
   * them back if it is not acknowledged; what was already kept (an earlier revocation of the same
   * id, acknowledged) stays.
   */
  notePending(ids: Iterable<string>, now = Date.now()): () => void {
    const mine = new Map<string, [Kept, Kept | undefined]>();
    for (const id of ids) {
      const k: Kept = { at: now, own: true, count: 0 };
      const before = this.#kept.get(id);
      this.#keep(id, k, now);
      if (this.#kept.get(id) === k) mine.set(id, [k, before]);
    }
    return () => {
      for (const [id, [k, before]] of mine) {
        if (this.#kept.get(id) !== k) continue;
        if (before === undefined) this.#kept.delete(id); else this.#kept.set(id, before);
      }
    };
  }

  /** This instance gave a session a new secret (answered as rotated): the `count`th rotation. */
  noteRotation(id: string, secretHash: string, count: number, now = Date.now()): void {
    this.#keep(id, { at: now, own: true, count, secretHash }, now);
  }

  /**
   * Heard on the channel: ids ended, a session's `count`th rotation, or ids a timed-out
   * sign-in's undo restored (their eviction was never acknowledged: forgotten where heard,
   * ended again where this instance had ended them itself).
   */
  heard(ids: string[], change: Change, now = Date.now()): void {
    if (change === 'restored') {
      for (const id of ids) {
        const k = this.#kept.get(id);
        if (k?.own === false) this.#kept.delete(id);
        // An undo restored what this instance ended and answered: a sign-in whose eviction a
        // failover lost evicted it again, timed out, and put it back. Ended it stays.
        else if (k?.own === true && k.count === 0) this.#target.revoke(id).catch(() => { /* the next reader or replay applies it */ });
      }
      return;
    }
    const count = change === 'ended' ? 0 : change;
    for (const id of ids) this.#keep(id, { at: now, own: false, count }, now);
  }

  /**
   * Whether a session as Redis just answered it lacks a kept change: it was revoked, or rotated
   * past `rotations`. Such a change was lost (a failover to a replica that never had it): it is
   * applied again at once, and the caller must not accept the session.
   */
  lost(id: string, rotations: number): boolean {
    const k = this.#kept.get(id);
    if (k === undefined || (k.count > 0 && rotations >= k.count)) return false;
    if (k.own) this.interrupted();
    else if (k.count === 0) this.#target.revoke(id).catch(() => { /* the next reader tries again */ });
    return true;
  }

  /** The connection was interrupted: apply this instance's changes again (once Redis answers). */
  interrupted(): void {
    if (this.#closed || this.#kept.size === 0) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#replay().finally(() => { this.#running = undefined; });
  }

  close(): void { this.#closed = true; }

  #keep(id: string, kept: Kept, now: number): void {
    const had = this.#kept.get(id);
    if (had !== undefined) {
      // A revocation outlives any rotation; a later rotation replaces an earlier one; what this
      // instance did stays its own when it hears its own broadcast.
      if (kept.count === had.count ? had.own || !kept.own : had.count === 0 || (kept.count !== 0 && kept.count < had.count)) return;
      this.#kept.delete(id);
    }
    this.#kept.set(id, kept);
    this.#prune(now);
  }

  #prune(now: number): void {
    for (const [id, { at }] of this.#kept) {
      if (now - at <= WINDOW_MS && this.#kept.size <= MAX_IDS) break;
      this.#kept.delete(id);
    }
  }

  #apply(id: string, k: Kept): Promise<unknown> {
    return k.secretHash === undefined ? this.#target.revoke(id) : this.#target.rotate(id, k.secretHash, k.count);
  }

  /** One pass over this instance's own changes, the newest first; false when one could not be applied. */
  async #pass(): Promise<boolean> {
    this.#prune(Date.now());
    const kept = [...this.#kept].filter(([, k]) => k.own).reverse();
    let failed = false;
    let restored = 0;
    for (let i = 0; i < kept.length && !this.#closed && !this.#again; i += 64) {
      const out = await Promise.allSettled(kept.slice(i, i + 64).map(([id, k]) => this.#apply(id, k)));
      for (const o of out) {
        if (o.status === 'rejected') failed = true;
        else if (o.value === true || (typeof o.value === 'number' && o.value > 0)) restored++;
      }
    }
    // Something took effect: Redis had lost it (a failover to a replica that never received it).
    if (restored > 0) this.#log.warn({ restored, of: kept.length }, 'tiered-session: revocations lost by Redis were applied again');
    if (failed) this.#log.debug({ of: kept.length }, 'tiered-session: applying recent revocations again failed; retrying');
    return !failed;
  }

  async #replay(): Promise<void> {
    // Right after an interruption the client may still be on the node being demoted: wait a
    // little, and try again while Redis does not answer; after a pass that applied everything,
    // one more FOLLOW_UP_MS later. An interruption during a pass starts afresh.
    let followUp = false;
    for (let attempt = 0; attempt < 10 && !this.#closed; attempt++) {
      await sleep(followUp ? FOLLOW_UP_MS : Math.min(250 * 2 ** attempt, 4000));
      if (this.#closed) return;
      // An interruption while waiting: this pass is its first, and it gets its own follow-up.
      const fresh = this.#again;
      this.#again = false;
      const ok = await this.#pass();
      if (this.#again) { attempt = -1; followUp = false; continue; }
      if (!ok) { followUp = false; continue; }
      if (followUp && !fresh) return;
      followUp = true;
      attempt = -1;
    }
  }
}
