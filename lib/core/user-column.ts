import { UserArena, utf8, writeUtf8 } from './user-arena.js';

// The packed table's user ids: sixteen bytes a slot, read by the slot's kind (two bits of the
// table's flags). Most apps' user ids fit the slot itself, so most sessions cost no interned user
// at all: a UUID in canonical form (36 characters, lowercase hex) is its 16 bytes; an id of up to
// 15 bytes of UTF-8 (numbers, short handles) is its length and its bytes. Any other id (an email
// address, say) is interned in the arena (user-arena.ts), shared by the user's sessions, and the
// slot holds its user slot.

/** The slot holds a UUID's 16 bytes. */
export const USER_UUID = 32;
/** The slot holds a length byte and up to 15 bytes of UTF-8. */
export const USER_SHORT = 64;
/** The flag bits of a user's kind; neither set: a user slot in the arena. */
export const USER_KINDS = USER_UUID | USER_SHORT;

const WIDTH = 16;

/** Hex digit → its value; anything else (uppercase included: the id must read back exactly) → -1. */
const NIBBLE = new Int8Array(128).fill(-1);
[...'0123456789abcdef'].forEach((c, i) => { NIBBLE[c.charCodeAt(0)] = i; });
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** Where each of a UUID's 16 bytes is written (two hex digits), around the dashes at 8, 13, 18 and 23. */
const UUID_DIGITS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** Write `id` at `at` as 16 bytes when it is a UUID in canonical form; false (bytes there undefined) when not. */
function packUuid(b: Uint8Array, at: number, id: string): boolean {
  if (id.length !== 36 || id.charCodeAt(8) !== 45 || id.charCodeAt(13) !== 45 || id.charCodeAt(18) !== 45 ||
    id.charCodeAt(23) !== 45) return false;
  for (let k = 0; k < 16; k++) {
    const c0 = id.charCodeAt(UUID_DIGITS[k]);
    const c1 = id.charCodeAt(UUID_DIGITS[k] + 1);
    const hi = c0 < 128 ? NIBBLE[c0] : -1;
    const lo = c1 < 128 ? NIBBLE[c1] : -1;
    if ((hi | lo) < 0) return false;
    b[at + k] = hi << 4 | lo;
  }
  return true;
}

function unpackUuid(b: Uint8Array, o: number): string {
  const h = (k: number) => HEX[b[o + k]];
  return `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}

export class UserColumn {
  #bytes = new Uint8Array(0);
  readonly #arena: UserArena;

  /** `max`: the table's entries (the most users the arena may hold). */
  constructor(max: number) {
    this.#arena = new UserArena(max);
  }

  /** Users interned in the arena (ids that fit no slot). */
  get interned(): number { return this.#arena.size; }

  grow(cap: number): void {
    const b = new Uint8Array(cap * WIDTH);
    b.set(this.#bytes);
    this.#bytes = b;
  }

  /** Keep `userId` at `slot`; answers its kind (flag bits) for name() and release(). */
  write(slot: number, userId: string): number {
    const b = this.#bytes;
    const o = slot * WIDTH;
    if (packUuid(b, o, userId)) return USER_UUID;
    const len = writeUtf8(b, o + 1, userId, WIDTH - 1);
    if (len >= 0) {
      b[o] = len;
      return USER_SHORT;
    }
    const u = this.#arena.intern(userId);
    b[o] = u;
    b[o + 1] = u >>> 8;
    b[o + 2] = u >>> 16;
    b[o + 3] = u >>> 24;
    return 0;
  }

  name(slot: number, kind: number): string {
    const b = this.#bytes;
    const o = slot * WIDTH;
    if (kind === USER_UUID) return unpackUuid(b, o);
    if (kind === USER_SHORT) return utf8(b, o + 1, b[o]);
    return this.#arena.name(this.#userSlot(o));
  }

  /** The slot's user is no longer held there. */
  release(slot: number, kind: number): void {
    if (kind === 0) this.#arena.release(this.#userSlot(slot * WIDTH));
  }

  clear(): void {
    this.#arena.clear();
  }

  #userSlot(o: number): number {
    const b = this.#bytes;
    return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24;
  }
}
