import type { Logger } from './log.js';

/** How long a revocation is kept for a replay: longer than a failover and its aftermath. */
const WINDOW_MS = 60_000;
/** At most this many ids are kept (the oldest go first). */
const MAX_IDS = 100_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * Revocations this instance made in the last minute, applied again after the
 * connection to Redis was interrupted (the revocation channel lost a subscriber, or the client
 * reconnected).
 *
 * Why: Redis replication is asynchronous, and WAIT does not make it consistent. Under Sentinel a
 * primary stalled long enough to be failed over can come back, accept a revocation, have it
 * confirmed by a replica that has not been moved to the new primary yet, and then be demoted:
 * the revocation is gone with it, and the session lives again on the new primary (the fault
 * check's Sentinel × stall cell found it). Sentinel kills the demoted node's clients, which
 * interrupts the channel and makes the client reconnect; the instance that answered the
 * revocation then applies it again, on the new primary. A revocation is idempotent and a session
 * id is never reused, so applying one again can only end a session a user was told had ended.
 * (Ids heard from other instances are not kept: the channel also carries rotations and updates,
 * which end nothing.)
 */
export class RevocationReplay {
  /** id → when it was revoked (ms); insertion order is time order. */
  readonly #ids = new Map<string, number>();
  readonly #apply: (id: string) => Promise<unknown>;
  readonly #log: Logger;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(apply: (id: string) => Promise<unknown>, log: Logger) {
    this.#apply = apply;
    this.#log = log;
  }

  /** Ids this instance revoked now (answered as revoked). */
  note(ids: Iterable<string>, now = Date.now()): void {
    for (const id of ids) {
      this.#ids.delete(id);
      this.#ids.set(id, now);
    }
    this.#prune(now);
  }

  /** The connection was interrupted: apply the window's revocations again (once Redis answers). */
  interrupted(): void {
    if (this.#closed || this.#ids.size === 0) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#replay().finally(() => { this.#running = undefined; });
  }

  close(): void { this.#closed = true; }

  #prune(now: number): void {
    for (const [id, at] of this.#ids) {
      if (now - at <= WINDOW_MS && this.#ids.size <= MAX_IDS) break;
      this.#ids.delete(id);
    }
  }

  async #replay(): Promise<void> {
    // Right after an interruption the client may still be on the node being demoted: wait a
    // little, and try again while Redis does not answer. The newest first (the likeliest to be
    // lost); a new interruption starts a fresh pass at once.
    for (let attempt = 0; attempt < 10 && !this.#closed; attempt++) {
      await sleep(Math.min(250 * 2 ** attempt, 4000));
      this.#again = false;
      this.#prune(Date.now());
      const ids = [...this.#ids.keys()].reverse();
      let failed = false;
      for (let i = 0; i < ids.length && !this.#closed && !this.#again; i += 64) {
        const out = await Promise.allSettled(ids.slice(i, i + 64).map((id) => this.#apply(id)));
        if (out.some((o) => o.status === 'rejected')) failed = true;
      }
      if (this.#again) attempt = -1;
      else if (!failed) return;
      else this.#log.debug({ of: ids.length }, 'tiered-session: applying recent revocations again failed; retrying');
    }
  }
}
