// A user's tags: the bucket and keyed hash of the user id that every key and session id of the
// user begins with, one per listed secret (README: Rotating the secret). An HMAC each (~1 µs,
// lib/core/sha256.ts: each secret's key is prepared once, here): the tags of the last MEMO users
// an L1 miss or an owner check asked for are kept (lru-cache), so the next such check, or that
// user's next sign-in, computes none.
import { LRUCache } from 'lru-cache';
import { HmacSha256 } from './sha256.js';
import { TAG_LENGTH, userTag } from './token.js';

const MEMO = 10_000;

export class UserTags {
  /** Each listed secret's HMAC key, in the secrets' order. */
  readonly #keys: readonly HmacSha256[];
  readonly #prefix: string;
  /** userId → its tag under each listed secret, in the secrets' order. */
  readonly #memo = new LRUCache<string, readonly string[]>({ max: MEMO });

  constructor(secrets: readonly string[], keyPrefix: string) {
    this.#keys = secrets.map((k) => new HmacSha256(k));
    this.#prefix = keyPrefix;
  }

  #all(userId: string): readonly string[] {
    let tags = this.#memo.get(userId);
    if (tags === undefined) {
      tags = this.#keys.map((k) => userTag(k, this.#prefix, userId));
      this.#memo.set(userId, tags);
    }
    return tags;
  }

  /**
   * The tag of the user's new sessions (the first secret's), for a sign-in. A miss computes that
   * one tag and is not remembered: the next requests of the session it creates are L1 hits, which
   * need no tag, and a sign-in of each user new to the memo would turn it over (an eviction and an
   * object for the old generation each) for nothing.
   */
  first(userId: string): string { return this.#memo.get(userId)?.[0] ?? userTag(this.#keys[0], this.#prefix, userId); }

  /** The user's tag under each listed secret, the first secret's first. */
  of(userId: string): string[] {
    const tags = this.#all(userId);
    return tags.filter((t, i) => tags.indexOf(t) === i);
  }

  /** Whether a session id carries its user's tag under a listed secret: a retired secret's sessions do not. */
  listed(id: string, userId: string): boolean {
    return this.#all(userId).includes(id.slice(0, TAG_LENGTH));
  }
}
