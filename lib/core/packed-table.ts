import { unindex } from './open-index.js';
import { EMPTY_DATA, type Session, type SessionData } from './session-data.js';
import { BASE64URL, HASH_LENGTH, ID_LENGTH, SECRET_LENGTH, TAG_LENGTH } from './token.js';
import { UserArena } from './user-arena.js';

// The L1's storage. Every field of a cached session has a fixed width, so each lives in a typed
// array at the session's slot: the id's 38 and the secret's 43 base64url characters packed four
// to three bytes (29 and 33 bytes: every character's six bits, nothing lost), five times as
// doubles, the user as a slot in an arena of interned ids (user-arena.ts), a flags byte and the
// LRU links. An open-addressing index (linear probing, backward-shift deletion) finds a slot from
// the id's characters in place, so a hit reads the Cookie header without slicing it, comparing
// each group of four characters with its three bytes (a character outside base64url matches
// nothing). Typed arrays hold their contents off the JS heap: a million cached sessions are a few
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
  #users = new Int32Array(0);
  #flags = new Uint8Array(0);
  /** createdAt, absoluteExpiresAt, authenticatedAt, last activity, fill time: five doubles a slot (epoch ms). */
  #times = new Float64Array(0);
  #prev = new Int32Array(0);
  #next = new Int32Array(0);
  /** Slot + 1 at each position; 0 is empty. */
  #index = new Int32Array(0);
  #mask = 0;
  #head = -1;
  #tail = -1;
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
  readonly #userIds: UserArena;

  constructor(max: number) {
    this.#max = max;
    this.#userIds = new UserArena(max);
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
  absoluteAt(slot: number): number { return this.#times[slot * 5 + 1]; }
  touchedAt(slot: number): number { return this.#times[slot * 5 + 3]; }
  setTouched(slot: number, at: number): void { this.#times[slot * 5 + 3] = at; }
  filledAt(slot: number): number { return this.#times[slot * 5 + 4]; }

  /** Most recently used first. */
  use(slot: number): void {
    if (slot === this.#head) return;
    this.#unlink(slot);
    this.#linkHead(slot);
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
    const t = this.#times;
    const b = slot * 5;
    const s: Session = Object.freeze({
      id: this.idOf(slot), userId: this.#userIds.name(this.#users[slot]), data: this.#data.get(slot) ?? EMPTY_DATA,
      createdAt: t[b], absoluteExpiresAt: t[b + 1], remembered: (this.#flags[slot] & REMEMBERED) !== 0, authenticatedAt: t[b + 2],
      newDevice: (this.#flags[slot] & NEW_DEVICE) !== 0,
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
   * Cache a session (its id not cached yet: the caller deleted any earlier entry); the least
   * recently used goes when the table is full. `proof` is the secret, or the stored hash.
   */
  set(session: Session, proof: string, touchedAt: number, now: number): void {
    this.delete(session.id);
    if (this.#size === this.#max) this.#remove(this.#tail);
    else if (this.#free < 0 && this.#used === this.#cap) this.#grow(Math.min(this.#max, this.#cap * 2));
    let slot: number;
    if (this.#free >= 0) {
      slot = this.#free;
      this.#free = this.#next[slot];
    } else {
      slot = this.#used++;
    }
    pack(this.#ids, slot * ID_BYTES, session.id, 0, ID_LENGTH);
    pack(this.#proofs, slot * PROOF_BYTES, proof, 0, proof.length);
    this.#flags[slot] = (session.remembered ? REMEMBERED : 0) | (proof.length === SECRET_LENGTH ? 0 : HASHED) |
      (session.newDevice ? NEW_DEVICE : 0);
    const b = slot * 5;
    this.#times[b] = session.createdAt;
    this.#times[b + 1] = session.absoluteExpiresAt;
    this.#times[b + 2] = session.authenticatedAt;
    this.#times[b + 3] = touchedAt;
    this.#times[b + 4] = now;
    this.#users[slot] = this.#userIds.intern(session.userId);
    if (session.data !== EMPTY_DATA && Object.keys(session.data).length > 0) this.#data.set(slot, session.data);
    this.#keepBuilt(slot, session);
    this.#place(slot);
    this.#linkHead(slot);
    this.#size++;
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
    for (let slot = this.#head; slot >= 0; slot = this.#next[slot]) {
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
    this.#userIds.clear();
    this.#head = this.#tail = this.#free = -1;
    this.#used = this.#size = 0;
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
    this.#unlink(slot);
    this.#userIds.release(this.#users[slot]);
    this.#data.delete(slot);
    this.#builtAt[slot] = 0;
    this.#next[slot] = this.#free;
    this.#free = slot;
    this.#size--;
  }

  #unlink(slot: number): void {
    const p = this.#prev[slot];
    const n = this.#next[slot];
    if (p >= 0) this.#next[p] = n; else this.#head = n;
    if (n >= 0) this.#prev[n] = p; else this.#tail = p;
  }

  #linkHead(slot: number): void {
    this.#prev[slot] = -1;
    this.#next[slot] = this.#head;
    if (this.#head >= 0) this.#prev[this.#head] = slot; else this.#tail = slot;
    this.#head = slot;
  }

  #grow(cap: number): void {
    const copy = <T extends Uint8Array | Uint16Array | Int32Array | Float64Array>(a: T, make: (n: number) => T, width: number): T => {
      const b = make(cap * width);
      b.set(a);
      return b;
    };
    this.#ids = copy(this.#ids, (n) => new Uint8Array(n), ID_BYTES);
    this.#proofs = copy(this.#proofs, (n) => new Uint8Array(n), PROOF_BYTES);
    this.#users = copy(this.#users, (n) => new Int32Array(n), 1);
    this.#flags = copy(this.#flags, (n) => new Uint8Array(n), 1);
    this.#times = copy(this.#times, (n) => new Float64Array(n), 5);
    this.#prev = copy(this.#prev, (n) => new Int32Array(n), 1);
    this.#next = copy(this.#next, (n) => new Int32Array(n), 1);
    this.#builtAt = copy(this.#builtAt, (n) => new Uint16Array(n), 1);
    this.#cap = cap;
    // The index at twice the slots or more (a power of two): probes stay short.
    let size = 1;
    while (size < cap * 2) size *= 2;
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
    for (let slot = this.#head; slot >= 0; slot = this.#next[slot]) this.#place(slot);
  }
}
