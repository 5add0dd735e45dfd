import type { Logger } from './log.js';

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

/** A kept change: a revocation, or the latest rotation this instance made of a live session. */
type Kept = { at: number; rotation?: { secretHash: string; count: number } };

/**
 * Revocations and rotations this instance made in the last minute, applied again after the
 * connection to Redis was interrupted (the revocation channel lost a subscriber, or the client
 * reconnected), and once more a few seconds after that.
 *
 * Why: Redis replication is asynchronous, and WAIT does not make it consistent. Under Sentinel a
 * primary stalled long enough to be failed over can come back, accept a revocation, have it
 * confirmed by a replica that has not been moved to the new primary yet, and then be demoted:
 * the revocation is gone with it, and the session lives again on the new primary (the fault
 * check's Sentinel × stall cell found it). Sentinel kills the demoted node's clients, which
 * interrupts the channel and makes the client reconnect; the instance that answered the
 * revocation then applies it again, on the new primary. The pass a few seconds later covers a
 * demotion that comes after the first pass, while the client still reached the old primary.
 * A revocation is idempotent and a session id is never reused, so applying one again can only
 * end a session a user was told had ended. A rotation (the old token ends) is applied again
 * only where the session's rotation count shows it lost: never over a later rotation, by this
 * instance or another. (Ids heard from other instances are not kept: the channel carries
 * changes without their content.)
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
    for (const id of ids) this.#keep(id, { at: now }, now);
  }

  /** This instance gave a session a new secret (answered as rotated): the `count`th rotation. */
  noteRotation(id: string, secretHash: string, count: number, now = Date.now()): void {
    this.#keep(id, { at: now, rotation: { secretHash, count } }, now);
  }

  /**
   * Whether a session as Redis just answered it lacks a change this instance made in the window:
   * it was revoked here, or rotated here past `rotations`. Such a change was lost (a failover
   * to a replica that never had it) and is applied again at once; the caller must not accept it.
   */
  lost(id: string, rotations: number): boolean {
    const k = this.#kept.get(id);
    if (k === undefined || (k.rotation !== undefined && rotations >= k.rotation.count)) return false;
    this.interrupted();
    return true;
  }

  /** The connection was interrupted: apply the window's changes again (once Redis answers). */
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
    this.#kept.delete(id);
    this.#kept.set(id, kept);
    this.#prune(now);
  }

  #prune(now: number): void {
    for (const [id, { at }] of this.#kept) {
      if (now - at <= WINDOW_MS && this.#kept.size <= MAX_IDS) break;
      this.#kept.delete(id);
    }
  }

  #apply(id: string, kept: Kept): Promise<unknown> {
    const r = kept.rotation;
    return r === undefined ? this.#target.revoke(id) : this.#target.rotate(id, r.secretHash, r.count);
  }

  /** One pass over the window, the newest first; false when some change could not be applied. */
  async #pass(): Promise<boolean> {
    this.#prune(Date.now());
    const kept = [...this.#kept].reverse();
    let failed = false;
    for (let i = 0; i < kept.length && !this.#closed && !this.#again; i += 64) {
      const out = await Promise.allSettled(kept.slice(i, i + 64).map(([id, k]) => this.#apply(id, k)));
      if (out.some((o) => o.status === 'rejected')) failed = true;
    }
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
