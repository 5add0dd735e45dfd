import { randomBytes } from 'node:crypto';
import { unindex } from './open-index.js';

// The packed table's user ids, interned off the JS heap. A string per user, a Map entry and a few
// array slots cost more than the rest of a cached session (one user per session is the common
// case), and would be a million old-generation objects for the garbage collector to walk. Here a
// user is a slot in typed arrays: its id's UTF-8 bytes in one growable byte array (offset,
// length) and the count of the entries that hold it. An open-addressing index (linear probing,
// backward-shift deletion) finds a user from a hash of the bytes, comparing the bytes themselves
// on each probe. Freed user slots are reused, and so are a freed id's bytes, by the next new id of
// the same length (ids of one shape, such as UUIDs, churn in place). Bytes no such id took stay
// behind until the byte array is full, when the live ids are copied into a new one sized for them
// (a pause in the order of 100 ms at a million ids). An id is decoded into a string only when a
// Session object is built. The table keeps UUIDs and short ids in its own slots (user-column.ts):
// the ids here are the longer ones.

/** User slots allocated at first; the arrays double up to `max`. */
const FIRST = 1024;
/** Bytes allocated at first, and the least a compaction leaves. */
const FIRST_BYTES = 4096;
/** The longest id: 512 UTF-16 code units, 3 bytes of UTF-8 each at most. */
const MAX_BYTES = 1536;
/** Freed bytes are reused from this length on: a free block's first four bytes link it to the next. */
const LINK = 4;

/** Ids of up to this many bytes, all ASCII, are decoded in JS. */
const SHORT = 16;

const ENCODER = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the id, not a byte order mark to drop.
const DECODER = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Write `s` as UTF-8 at `at`, in `room` bytes at most: the bytes written, or -1 when it does not
 * fit (the bytes there are then undefined). ASCII is written in JS, anything else by the encoder.
 */
export function writeUtf8(b: Uint8Array, at: number, s: string, room: number): number {
  const n = s.length;
  if (n > room) return -1;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) break;
    b[at + i++] = c;
  }
  if (i === n) return n;
  const r = ENCODER.encodeInto(s, b.subarray(at, at + room));
  return r.read === n ? r.written : -1;
}

/** The `n` bytes of UTF-8 at `o`, as a string. */
export function utf8(b: Uint8Array, o: number, n: number): string {
  const v = b.subarray(o, o + n);
  // A short ASCII id is made quicker in JS; from about 16 bytes on the decoder is quicker, ASCII or not.
  if (n <= SHORT) {
    let i = 0;
    while (i < n && b[o + i] < 0x80) i++;
    if (i === n) return String.fromCharCode.apply(null, v as unknown as number[]);
  }
  return DECODER.decode(v);
}

/**
 * Per process: where a user lands in the index cannot be worked out in advance from the ids
 * (user ids can be chosen by users, e.g. email addresses).
 */
const SEED = randomBytes(4).readInt32LE(0);

/** FNV-1a over the bytes, from a random basis, then mixed so the low bits (the index position) depend on every byte. */
function hashOf(b: Uint8Array, o: number, n: number): number {
  let h = SEED;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[o + i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  return h ^ (h >>> 13);
}

export class UserArena {
  readonly #max: number;
  #cap = 0;
  /** User slots handed out so far; below it, a slot is live (refs > 0) or on the free list. */
  #used = 0;
  /** The first free user slot + 1, or 0; a free slot's offset holds the next one's, the same way. */
  #free = 0;
  #size = 0;
  #bytes = new Uint8Array(FIRST_BYTES);
  /** Bytes written; those of freed ids among them stay until a new id of their length or a compaction takes them. */
  #end = 0;
  /** Bytes of the live ids. */
  #live = 0;
  #offsets = new Uint32Array(0);
  #lengths = new Uint16Array(0);
  #refs = new Int32Array(0);
  /**
   * For each length of id, the offset + 1 of the bytes of a freed id of that length, or 0; the
   * first four bytes of each hold the next one's, the same way.
   */
  readonly #freeBytes = new Uint32Array(MAX_BYTES + 1);
  /** User slot + 1 at each position; 0 is empty. */
  #index = new Int32Array(0);
  #mask = 0;

  /** `max`: the most users at once (the table's entries: each live user is held by one at least). */
  constructor(max: number) {
    this.#max = max;
    this.#grow(Math.min(max, FIRST));
  }

  /** Users held. */
  get size(): number { return this.#size; }

  /** The bytes allocated for ids (live ones, freed ones not yet compacted away, and room). */
  get byteLength(): number { return this.#bytes.length; }

  /** The bytes up to the end of the last id written: live ids, and freed ones not yet reused or compacted away. */
  get written(): number { return this.#end; }

  /** The user slot of `userId`, held once more (interned if new). Release each hold with `release()`. */
  intern(userId: string): number {
    const n = userId.length;
    this.#room(n * 3);
    // Encoded where a new id's bytes go: a known id leaves them unclaimed, and no temporary buffer is made.
    const b = this.#bytes;
    const at = this.#end;
    const len = writeUtf8(b, at, userId, n * 3);
    const h = hashOf(b, at, len);
    const idx = this.#index;
    const mask = this.#mask;
    for (let p = h & mask; ; p = (p + 1) & mask) {
      const v = idx[p];
      if (v === 0) return this.#add(at, len, p);
      const u = v - 1;
      if (this.#lengths[u] !== len) continue;
      const o = this.#offsets[u];
      let i = 0;
      while (i < len && b[o + i] === b[at + i]) i++;
      if (i === len) {
        this.#refs[u]++;
        return u;
      }
    }
  }

  /** A new user: the `len` bytes at `at` (the end), placed at index position `p` (the empty one its probe ended on). */
  #add(at: number, len: number, p: number): number {
    if (this.#free === 0 && this.#used === this.#cap) {
      this.#grow(Math.min(this.#max, this.#cap * 2));
      p = this.#home(at, len);
      while (this.#index[p] !== 0) p = (p + 1) & this.#mask;
    }
    let u: number;
    if (this.#free > 0) {
      u = this.#free - 1;
      this.#free = this.#offsets[u];
    } else {
      u = this.#used++;
    }
    const f = len >= LINK && len <= MAX_BYTES ? this.#freeBytes[len] : 0;
    if (f > 0) {
      this.#freeBytes[len] = this.#linkAt(f - 1);
      this.#bytes.copyWithin(f - 1, at, at + len);
      this.#offsets[u] = f - 1;
    } else {
      this.#offsets[u] = at;
      this.#end = at + len;
    }
    this.#lengths[u] = len;
    this.#refs[u] = 1;
    this.#index[p] = u + 1;
    this.#live += len;
    this.#size++;
    return u;
  }

  /** One hold of user slot `u` ends; with the last, the user is forgotten and its slot free. */
  release(u: number): void {
    if (--this.#refs[u] > 0) return;
    unindex(this.#index, this.#mask, u, (v) => this.#homeOf(v));
    const len = this.#lengths[u];
    if (len >= LINK && len <= MAX_BYTES) {
      const o = this.#offsets[u];
      const next = this.#freeBytes[len];
      const b = this.#bytes;
      b[o] = next;
      b[o + 1] = next >>> 8;
      b[o + 2] = next >>> 16;
      b[o + 3] = next >>> 24;
      this.#freeBytes[len] = o + 1;
    }
    this.#live -= len;
    this.#size--;
    this.#offsets[u] = this.#free;
    this.#free = u + 1;
  }

  /** The link in the first four bytes of a freed id's bytes at `o`. */
  #linkAt(o: number): number {
    const b = this.#bytes;
    return (b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24) >>> 0;
  }

  /** The id of user slot `u`, as a string. */
  name(u: number): string {
    return utf8(this.#bytes, this.#offsets[u], this.#lengths[u]);
  }

  clear(): void {
    this.#index.fill(0);
    this.#freeBytes.fill(0);
    this.#used = this.#size = this.#end = this.#live = this.#free = 0;
  }

  /**
   * At least `need` bytes free at the end. When the array is full, the live ids are copied into a
   * new one half as large again as they are (and no smaller than 4 bytes per user slot, so that a
   * compaction, which visits every slot, comes after enough new bytes to pay for it): the space
   * of freed ids no new id took is reclaimed, and a cache whose users churn does not grow.
   */
  #room(need: number): void {
    if (this.#end + need <= this.#bytes.length) return;
    const from = this.#bytes;
    const to = new Uint8Array(Math.max(FIRST_BYTES, Math.ceil((this.#live + need) * 1.5), this.#used * 4));
    let at = 0;
    for (let u = 0; u < this.#used; u++) {
      if (this.#refs[u] === 0) continue;
      const o = this.#offsets[u];
      const n = this.#lengths[u];
      this.#offsets[u] = at;
      for (let i = 0; i < n; i++) to[at + i] = from[o + i];
      at += n;
    }
    this.#bytes = to;
    this.#end = at;
    this.#freeBytes.fill(0);
  }

  /** The index position the `len` bytes at `at` hash to. */
  #home(at: number, len: number): number {
    return hashOf(this.#bytes, at, len) & this.#mask;
  }

  #homeOf(u: number): number {
    return this.#home(this.#offsets[u], this.#lengths[u]);
  }

  #grow(cap: number): void {
    const copy = <T extends Uint16Array | Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.#offsets = copy(this.#offsets, (n) => new Uint32Array(n));
    this.#lengths = copy(this.#lengths, (n) => new Uint16Array(n));
    this.#refs = copy(this.#refs, (n) => new Int32Array(n));
    this.#cap = cap;
    // The index at twice the slots or more (a power of two): probes stay short.
    let size = 1;
    while (size < cap * 2) size *= 2;
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
    for (let u = 0; u < this.#used; u++) {
      if (this.#refs[u] === 0) continue;
      let p = this.#homeOf(u);
      while (this.#index[p] !== 0) p = (p + 1) & this.#mask;
      this.#index[p] = u + 1;
    }
  }
}
