// A user's tags: the bucket and keyed hash of the user id that every key and session id of the
// user begins with, one per listed secret (README: Rotating the secret).
import { TAG_LENGTH, userTag } from './token.js';

export class UserTags {
  readonly #secrets: readonly string[];
  readonly #prefix: string;

  constructor(secrets: readonly string[], keyPrefix: string) {
    this.#secrets = secrets;
    this.#prefix = keyPrefix;
  }

  /** The tag of the user's new sessions (the first secret's). */
  first(userId: string): string { return userTag(this.#secrets[0], this.#prefix, userId); }

  /** The user's tag under each listed secret, the first secret's first. */
  of(userId: string): string[] {
    const tags = this.#secrets.map((k) => userTag(k, this.#prefix, userId));
    return tags.filter((t, i) => tags.indexOf(t) === i);
  }

  /** Whether a session id carries its user's tag under a listed secret: a retired secret's sessions do not. */
  listed(id: string, userId: string): boolean {
    const tag = id.slice(0, TAG_LENGTH);
    for (const k of this.#secrets) if (userTag(k, this.#prefix, userId) === tag) return true;
    return false;
  }
}
