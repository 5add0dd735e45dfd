import { unindex } from './open-index.js';
import { EMPTY_DATA, type Session, type SessionData } from './session-data.js';
import { BASE64URL, HASH_LENGTH, ID_LENGTH, SECRET_LENGTH, TAG_LENGTH } from './token.js';
import { USER_KINDS, UserColumn } from './user-column.js';

// The L1's storage. Every field of a cached session has a fixed width, so each lives in a typed
// array at the session's slot: the id's 38 and the secret's 43 base64url characters packed four
// to three bytes (29 and 33 bytes: every character's six bits, nothing lost), five times of five
// bytes each (40 bits of ms from the table's epoch: ±17 years, exact; a slot whose times do not
// fit keeps doubles in a side map), the user in 16 bytes (a UUID or a short id in place, any
// other interned: user-column.ts) and a flags byte. When the table is full a CLOCK picks the
// entry to evict: a hit sets its slot's used bit, and the hand evicts the first slot it finds
// without one, clearing the bits it passes (no LRU links: a hit writes one bit, not four links,
// and a slot costs eight bytes less). An open-addressing index (linear probing, backward-shift
// deletion) finds a slot from the id's characters in place, so a hit reads the Cookie header
// without slicing it, comparing each group of four characters with its three bytes (a character
// outside base64url matches nothing). Typed arrays hold their contents off the JS heap: a million cached sessions are a few
// dozen objects to the garbage collector, not a few million. The `Session` object a hit answers is
// built from the slot and kept for recent hits only (RECENT of them); app data (rarely set) sits
// in a side map.

/** Session objects kept built, at most: the hot sessions' hits allocate nothing. */
const RECENT = 4096;
/** Slots allocated at first; the arrays double up to `max`. */
const FIRST = 1024;

const REMEMBERED = 1;
/** The proof is the stored secret hash (a pre-warmed slot), not yet the secret itself. */
const HASHED = 2;
/** Signed in from a device new to the user (knownDevices). */
const NEW_DEVICE = 4;
/** Hit since the clock's hand last passed the slot: the hand spares it once. */
const USED = 8;
/** The slot's times are doubles in the side map (one of them does not fit 40 bits from the epoch). */
const WIDE = 16;
// USER_KINDS (32 and 64): how the user is kept (user-column.ts).

/** createdAt, absoluteExpiresAt, authenticatedAt, last activity, fill time. */
const TIMES = 5;
const TWO32 = 2 ** 32;
/** A time fits when it is a whole number of ms within ±SPAN of the epoch (40 bits, signed). */
const SPAN = 2 ** 39;

/** base64url character → its 6 bits; any other UTF-16 code unit → 64 (BAD), which no comparison accepts. */
const BAD = 64;
const SIX = new Uint8Array(65536).fill(BAD);
[...BASE64URL].forEach((c, i) => { SIX[c.charCodeAt(0)] = i; });
const CODES = [...BASE64URL].map((c) => c.charCodeAt(0));

/** Bytes a slot's id and proof take: six bits a character, four characters to three bytes. */
const ID_BYTES = Math.ceil(ID_LENGTH * 6 / 8);
const PROOF_BYTES = Math.ceil(SECRET_LENGTH * 6 / 8);

/** Pack `n` base64url characters of `s` from `from` into `to` at `o`, six bits each (the last byte's left-aligned). */
function pack(to: Uint8Array, o: number, s: string, from: number, n: number): void {
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < n; i++) {
    acc = (acc << 6 | SIX[s.charCodeAt(from + i)]) & 0x3fff;
    bits += 6;
    if (bits >= 8) to[o++] = acc >> (bits -= 8);
  }
  if (bits > 0) to[o] = acc << (8 - bits);
}

/** The `n` characters packed at `o`. */
function unpack(from: Uint8Array, o: number, n: number): string {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const bit = i * 6;
    const at = o + (bit >> 3);
    const w = from[at] << 8 | (at + 1 < from.length ? from[at + 1] : 0);
    out[i] = CODES[w >> (10 - (bit & 7)) & 63];
  }
  return String.fromCharCode(...out);
}

/**
 * Zero when the `n` characters of `s` at `at` are the ones packed at `o`, all in base64url. Every
 * character is read whatever the others (a secret's comparison takes the same time wherever it
 * differs).
 */
function differs(b: Uint8Array, o: number, s: string, at: number, n: number): number {
  let diff = 0;
  let bad = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4, o += 3) {
    const c0 = SIX[s.charCodeAt(at + i)];
    const c1 = SIX[s.charCodeAt(at + i + 1)];
    const c2 = SIX[s.charCodeAt(at + i + 2)];
    const c3 = SIX[s.charCodeAt(at + i + 3)];
    bad |= c0 | c1 | c2 | c3;
    diff |= (c0 << 18 | c1 << 12 | c2 << 6 | c3) ^ (b[o] << 16 | b[o + 1] << 8 | b[o + 2]);
  }
  if (i < n) {
    let v = 0;
    let w = 0;
    for (let k = i; k < n; k++) {
      const c = SIX[s.charCodeAt(at + k)];
      bad |= c;
      v = v << 6 | c;
    }
    const bits = (n - i) * 6;
    const bytes = Math.ceil(bits / 8);
    for (let k = 0; k < bytes; k++) w = w << 8 | b[o + k];
    diff |= (v << (bytes * 8 - bits)) ^ w;
  }
  return diff | (bad & BAD);
}

/**
 * The index position of an id: five characters of its random part (CSPRNG output, and only ids
 * this package generated are ever inserted) give 30 uniform bits. They are characters 22 to 26:
 * the last two of the sixth group of four and the first three of the seventh.
 */
const R = TAG_LENGTH;
const G5 = (R >> 2) * 3;

export class PackedTable {
  readonly #max: number;
  #cap = 0;
  #ids = new Uint8Array(0);
  #proofs = new Uint8Array(0);
  #flags = new Uint8Array(0);
  /**
   * The TIMES times of each slot, as ms from `#epoch`: the low 32 bits and the high 8 (signed). A
   * free slot's first low word links the free list (the next free slot + 1, or 0).
   */
  #low = new Uint32Array(0);
  #high = new Int8Array(0);
  /** The first fill time the table saw, whole ms (NaN until then): every time within ±17 years of it fits. */
  #epoch = Number.NaN;
  /** The times of WIDE slots (fractional ms, or out of range). */
  readonly #wide = new Map<number, Float64Array>();
  /** Slot + 1 at each position; 0 is empty. */
  #index = new Int32Array(0);
  #mask = 0;
  /** The clock's hand: the next slot it looks at when the table is full. */
  #hand = 0;
  #free = -1;
  #used = 0;
  #size = 0;
  /** The Session objects built for recent hits (RECENT at most), in a ring. */
  readonly #built = new Array<Session | undefined>(RECENT);
  /** The slot each built Session belongs to (-1: none). */
  readonly #ring = new Int32Array(RECENT).fill(-1);
  #ringAt = 0;
  /** Per slot, the index + 1 of its built Session, or 0 (two bytes a slot, not a JS array of a million). */
  #builtAt = new Uint16Array(0);
  readonly #data = new Map<number, Readonly<SessionData>>();
  readonly #users: UserColumn;

  constructor(max: number) {
    this.#max = max;
    this.#users = new UserColumn(max);
    this.#grow(Math.min(max, FIRST));
  }

  get size(): number { return this.#size; }

  /** The slot of the id at `at` in `s` (38 characters), or -1. */
  find(s: string, at: number): number {
    if (s.length < at + ID_LENGTH) return -1;
    const idx = this.#index;
    const mask = this.#mask;
    const ids = this.#ids;
    let p = (SIX[s.charCodeAt(at + R)] | SIX[s.charCodeAt(at + R + 1)] << 6 | SIX[s.charCodeAt(at + R + 2)] << 12 |
      SIX[s.charCodeAt(at + R + 3)] << 18 | SIX[s.charCodeAt(at + R + 4)] << 24) & mask;
    for (;;) {
      const v = idx[p];
      if (v === 0) return -1;
      if (differs(ids, (v - 1) * ID_BYTES, s, at, ID_LENGTH) === 0) return v - 1;
      p = (p + 1) & mask;
    }
  }

  /** Whether the secret at `from` in `s` is the slot's, compared in constant time (a secret slot only). */
  secretMatches(slot: number, s: string, from: number): boolean {
    return s.length >= from + SECRET_LENGTH && differs(this.#proofs, slot * PROOF_BYTES, s, from, SECRET_LENGTH) === 0;
  }

  /** A pre-warmed slot holds the stored secret hash (22 characters) until a request proves its secret. */
  hashed(slot: number): boolean { return (this.#flags[slot] & HASHED) !== 0; }

  storedHash(slot: number): string {
    return unpack(this.#proofs, slot * PROOF_BYTES, HASH_LENGTH);
  }

  /** The secret proven: keep it instead of the hash. */
  proven(slot: number, secret: string): void {
    pack(this.#proofs, slot * PROOF_BYTES, secret, 0, SECRET_LENGTH);
    this.#flags[slot] &= ~HASHED;
  }

  remembered(slot: number): boolean { return (this.#flags[slot] & REMEMBERED) !== 0; }
  absoluteAt(slot: number): number { return this.#time(slot, 1); }
  touchedAt(slot: number): number { return this.#time(slot, 3); }
  filledAt(slot: number): number { return this.#time(slot, 4); }

  setTouched(slot: number, at: number): void {
    if ((this.#flags[slot] & WIDE) === 0 && this.#fits(at)) this.#put(slot * TIMES + 3, at);
    else this.#widen(slot)[3] = at;
  }

  /** A hit: the clock's hand spares the slot on its next pass. */
  use(slot: number): void {
    const f = this.#flags[slot];
    if ((f & USED) === 0) this.#flags[slot] = f | USED;
  }

  #time(slot: number, k: number): number {
    if ((this.#flags[slot] & WIDE) !== 0) return this.#wideTime(slot, k);
    const i = slot * TIMES + k;
    return this.#epoch + this.#high[i] * TWO32 + this.#low[i];
  }

  /** Out of the hot path's way: the few WIDE slots' times. */
  #wideTime(slot: number, k: number): number {
    return this.#wide.get(slot)![k];
  }

  #fits(at: number): boolean {
    const d = at - this.#epoch;
    return Number.isInteger(d) && d >= -SPAN && d < SPAN;
  }

  /** Write a time that fits at position `i`. */
  #put(i: number, at: number): void {
    const d = at - this.#epoch;
    const h = Math.floor(d / TWO32);
    this.#high[i] = h;
    this.#low[i] = d - h * TWO32;
  }

  /** The slot's times as doubles in the side map, from now on. */
  #widen(slot: number): Float64Array {
    if ((this.#flags[slot] & WIDE) !== 0) return this.#wide.get(slot)!;
    const w = new Float64Array(TIMES);
    for (let k = 0; k < TIMES; k++) w[k] = this.#time(slot, k);
    this.#wide.set(slot, w);
    this.#flags[slot] |= WIDE;
    return w;
  }

  idOf(slot: number): string {
    return unpack(this.#ids, slot * ID_BYTES, ID_LENGTH);
  }

  /** The slot's session, built on its first hit and kept while it is among the RECENT last built. */
  session(slot: number): Session {
    const k = this.#builtAt[slot];
    return k !== 0 ? this.#built[k - 1]! : this.#build(slot);
  }

  #build(slot: number): Session {
    const f = this.#flags[slot];
    const s: Session = Object.freeze({
      id: this.idOf(slot), userId: this.#users.name(slot, f & USER_KINDS), data: this.#data.get(slot) ?? EMPTY_DATA,
      createdAt: this.#time(slot, 0), absoluteExpiresAt: this.#time(slot, 1), remembered: (f & REMEMBERED) !== 0,
      authenticatedAt: this.#time(slot, 2), newDevice: (f & NEW_DEVICE) !== 0,
    });
    this.#keepBuilt(slot, s);
    return s;
  }

  #keepBuilt(slot: number, s: Session): void {
    const i = this.#ringAt;
    const old = this.#ring[i];
    // The ring may name a slot whose Session was built again since, elsewhere in it: that one stays.
    if (old >= 0 && this.#builtAt[old] === i + 1) this.#builtAt[old] = 0;
    this.#ring[i] = slot;
    this.#built[i] = s;
    this.#builtAt[slot] = i + 1;
    this.#ringAt = (i + 1) % RECENT;
  }

  /**
   * Cache a session (any earlier entry of its id goes). When the table is full the clock evicts an
   * entry not hit since its hand last passed; answers that entry's slot (-1 when none went: the
   * slot the new entry takes is not always the evicted one). `proof` is the secret, or the stored hash.
   * `keep`: the object is kept built for the next hits (an L1 miss's, answered now). A sign-in's
   * and a pre-warm's are not: their first hit builds one. Kept, a sign-in's object would sit in the
   * ring until RECENT more were built, an old-generation reference to a young object for each new
   * session (a sign-in every request: 10 µs a request more and mark-compacts, benchmarks/README.md).
   */
  set(session: Session, proof: string, touchedAt: number, now: number, keep = false): number {
    this.delete(session.id);
    let evicted = -1;
    if (this.#size === this.#max) {
      evicted = this.#victim();
      this.#remove(evicted);
    } else if (this.#free < 0 && this.#used === this.#cap) {
      this.#grow(Math.min(this.#max, this.#cap * 2));
    }
    let slot: number;
    if (this.#free >= 0) {
      slot = this.#free;
      this.#free = this.#low[slot * TIMES] - 1;
    } else {
      slot = this.#used++;
    }
    pack(this.#ids, slot * ID_BYTES, session.id, 0, ID_LENGTH);
    pack(this.#proofs, slot * PROOF_BYTES, proof, 0, proof.length);
    let flags = (session.remembered ? REMEMBERED : 0) | (proof.length === SECRET_LENGTH ? 0 : HASHED) |
      (session.newDevice ? NEW_DEVICE : 0);
    if (Number.isNaN(this.#epoch)) this.#epoch = Number.isFinite(now) ? Math.floor(now) : 0;
    const { createdAt, absoluteExpiresAt, authenticatedAt } = session;
    if (this.#fits(createdAt) && this.#fits(absoluteExpiresAt) && this.#fits(authenticatedAt) && this.#fits(touchedAt) &&
      this.#fits(now)) {
      const i = slot * TIMES;
      this.#put(i, createdAt);
      this.#put(i + 1, absoluteExpiresAt);
      this.#put(i + 2, authenticatedAt);
      this.#put(i + 3, touchedAt);
      this.#put(i + 4, now);
    } else {
      flags |= WIDE;
      this.#wide.set(slot, Float64Array.of(createdAt, absoluteExpiresAt, authenticatedAt, touchedAt, now));
    }
    this.#flags[slot] = flags | this.#users.write(slot, session.userId);
    if (session.data !== EMPTY_DATA && Object.keys(session.data).length > 0) this.#data.set(slot, session.data);
    if (keep) this.#keepBuilt(slot, session);
    this.#place(slot);
    this.#size++;
    return evicted;
  }

  /**
   * The slot the clock evicts (the table full: every slot below #used is live): the first one
   * from the hand on not hit since the hand last passed it; the hits it passes are spared once.
   */
  #victim(): number {
    const f = this.#flags;
    for (;;) {
      const slot = this.#hand;
      this.#hand = slot + 1 < this.#used ? slot + 1 : 0;
      if ((f[slot] & USED) === 0) return slot;
      f[slot] &= ~USED;
    }
  }

  delete(id: string): boolean {
    const slot = this.find(id, 0);
    if (slot < 0) return false;
    this.#remove(slot);
    return true;
  }

  deleteSlot(slot: number): void { this.#remove(slot); }

  /** Ids whose first 22 characters are `tag` (one user's sessions under one secret). */
  idsWithPrefix(tag: string): string[] {
    const out: string[] = [];
    // The tag's first 20 characters are whole groups; its last two are the top 12 bits of the next.
    const whole = TAG_LENGTH & ~3;
    const c0 = SIX[tag.charCodeAt(whole)];
    const c1 = SIX[tag.charCodeAt(whole + 1)];
    if (tag.length !== TAG_LENGTH || ((c0 | c1) & BAD) !== 0) return out;
    const rest = c0 << 18 | c1 << 12;
    const g = (whole >> 2) * 3;
    const ids = this.#ids;
    const idx = this.#index;
    for (let p = 0; p < idx.length; p++) {
      if (idx[p] === 0) continue;
      const slot = idx[p] - 1;
      const o = slot * ID_BYTES;
      if (differs(ids, o, tag, 0, whole) !== 0) continue;
      if (((ids[o + g] << 16 | ids[o + g + 1] << 8) & 0xfff000) === rest) out.push(this.idOf(slot));
    }
    return out;
  }

  clear(): void {
    this.#index.fill(0);
    this.#builtAt.fill(0);
    this.#built.fill(undefined);
    this.#ring.fill(-1);
    this.#data.clear();
    this.#wide.clear();
    this.#users.clear();
    this.#free = -1;
    this.#used = this.#size = this.#hand = 0;
  }

  /** find()'s first probe for the id in `slot`, from its packed bytes: characters 22 and 23 end one group, 24 to 26 begin the next. */
  #home(slot: number): number {
    const ids = this.#ids;
    const o = slot * ID_BYTES + G5;
    const a = ids[o + 1] << 8 | ids[o + 2];
    const b = ids[o + 3] << 16 | ids[o + 4] << 8 | ids[o + 5];
    return ((a >> 6 & 63) | (a & 63) << 6 | (b >> 18) << 12 | (b >> 12 & 63) << 18 | (b >> 6 & 63) << 24) & this.#mask;
  }

  #place(slot: number): void {
    let p = this.#home(slot);
    while (this.#index[p] !== 0) p = (p + 1) & this.#mask;
    this.#index[p] = slot + 1;
  }

  #remove(slot: number): void {
    unindex(this.#index, this.#mask, slot, (v) => this.#home(v));
    const f = this.#flags[slot];
    this.#users.release(slot, f & USER_KINDS);
    if ((f & WIDE) !== 0) this.#wide.delete(slot);
    this.#flags[slot] = 0;
    this.#data.delete(slot);
    this.#builtAt[slot] = 0;
    this.#low[slot * TIMES] = this.#free + 1;
    this.#free = slot;
    this.#size--;
  }

  #grow(cap: number): void {
    const copy = <T extends Uint8Array | Int8Array | Uint16Array | Uint32Array>(a: T, make: (n: number) => T, width: number): T => {
      const b = make(cap * width);
      b.set(a);
      return b;
    };
    this.#ids = copy(this.#ids, (n) => new Uint8Array(n), ID_BYTES);
    this.#proofs = copy(this.#proofs, (n) => new Uint8Array(n), PROOF_BYTES);
    this.#flags = copy(this.#flags, (n) => new Uint8Array(n), 1);
    this.#low = copy(this.#low, (n) => new Uint32Array(n), TIMES);
    this.#high = copy(this.#high, (n) => new Int8Array(n), TIMES);
    this.#users.grow(cap);
    this.#builtAt = copy(this.#builtAt, (n) => new Uint16Array(n), 1);
    this.#cap = cap;
    // The index at twice the slots or more (a power of two): probes stay short.
    let size = 1;
    while (size < cap * 2) size *= 2;
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
    // Only a table without free slots grows: every slot below #used is live.
    for (let slot = 0; slot < this.#used; slot++) this.#place(slot);
  }
}
