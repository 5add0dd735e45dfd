import { unindex } from './open-index.js';
import { EMPTY_DATA, type Session, type SessionData } from './session-data.js';
import { BASE64URL, HASH_LENGTH, ID_LENGTH, SECRET_LENGTH, TAG_LENGTH } from './token.js';
import { UserArena } from './user-arena.js';

// The L1's storage. Every field of a cached session has a fixed width, so each lives in a typed
// array at the session's slot: the id's 38 and the secret's 43 base64url characters as bytes,
// five times as doubles, the user as a slot in an arena of interned ids (user-arena.ts), a flags
// byte and the LRU links. An open-addressing index (linear probing, backward-shift deletion)
// finds a slot from the id's characters in place, so a hit reads the Cookie header without
// slicing it. Typed arrays hold their contents off the JS heap: a million cached sessions are a
// few dozen objects to the garbage collector, not a few million. The `Session` object a hit
// answers is built from the slot and kept for recent hits only (RECENT of them); app data (rarely
// set) sits in a side map.

/** Session objects kept built, at most: the hot sessions' hits allocate nothing. */
const RECENT = 4096;
/** Slots allocated at first; the arrays double up to `max`. */
const FIRST = 1024;

const REMEMBERED = 1;
/** The proof is the stored secret hash (a pre-warmed slot), not yet the secret itself. */
const HASHED = 2;
/** Signed in from a device new to the user (knownDevices). */
const NEW_DEVICE = 4;

/** base64url character → its 6 bits (other characters → 0: the full id is compared anyway). */
const SIX = new Uint8Array(65536);
[...BASE64URL].forEach((c, i) => { SIX[c.charCodeAt(0)] = i; });

/**
 * The index position of an id: five characters of its random part (CSPRNG output, and only ids
 * this package generated are ever inserted) give 30 uniform bits.
 */
const R = TAG_LENGTH;

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
  /** The built Session of a slot, for recent hits; a ring of the slots built, to bound them. */
  #objs: (Session | undefined)[] = [];
  readonly #ring = new Int32Array(RECENT).fill(-1);
  #ringAt = 0;
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
    const idx = this.#index;
    const mask = this.#mask;
    const ids = this.#ids;
    let p = (SIX[s.charCodeAt(at + R)] | SIX[s.charCodeAt(at + R + 1)] << 6 | SIX[s.charCodeAt(at + R + 2)] << 12 |
      SIX[s.charCodeAt(at + R + 3)] << 18 | SIX[s.charCodeAt(at + R + 4)] << 24) & mask;
    for (;;) {
      const v = idx[p];
      if (v === 0) return -1;
      const o = (v - 1) * ID_LENGTH;
      let i = 0;
      while (i < ID_LENGTH && ids[o + i] === s.charCodeAt(at + i)) i++;
      if (i === ID_LENGTH) return v - 1;
      p = (p + 1) & mask;
    }
  }

  /** Whether the secret at `from` in `s` is the slot's, compared in constant time (a secret slot only). */
  secretMatches(slot: number, s: string, from: number): boolean {
    const pr = this.#proofs;
    const o = slot * SECRET_LENGTH;
    let diff = 0;
    for (let i = 0; i < SECRET_LENGTH; i++) diff |= pr[o + i] ^ s.charCodeAt(from + i);
    return diff === 0;
  }

  /** A pre-warmed slot holds the stored secret hash (22 characters) until a request proves its secret. */
  hashed(slot: number): boolean { return (this.#flags[slot] & HASHED) !== 0; }

  storedHash(slot: number): string {
    const o = slot * SECRET_LENGTH;
    return String.fromCharCode(...this.#proofs.subarray(o, o + HASH_LENGTH));
  }

  /** The secret proven: keep it instead of the hash. */
  proven(slot: number, secret: string): void {
    this.#write(this.#proofs, slot * SECRET_LENGTH, secret, SECRET_LENGTH);
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
    const o = slot * ID_LENGTH;
    return String.fromCharCode(...this.#ids.subarray(o, o + ID_LENGTH));
  }

  /** The slot's session, built on its first hit and kept while it is among the RECENT last built. */
  session(slot: number): Session {
    return this.#objs[slot] ?? this.#build(slot);
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
    const old = this.#ring[this.#ringAt];
    if (old >= 0 && old !== slot) this.#objs[old] = undefined;
    this.#ring[this.#ringAt] = slot;
    this.#ringAt = (this.#ringAt + 1) % RECENT;
    this.#objs[slot] = s;
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
    this.#write(this.#ids, slot * ID_LENGTH, session.id, ID_LENGTH);
    this.#write(this.#proofs, slot * SECRET_LENGTH, proof, proof.length);
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
    for (let slot = this.#head; slot >= 0; slot = this.#next[slot]) {
      const o = slot * ID_LENGTH;
      let i = 0;
      while (i < TAG_LENGTH && this.#ids[o + i] === tag.charCodeAt(i)) i++;
      if (i === TAG_LENGTH) out.push(this.idOf(slot));
    }
    return out;
  }

  clear(): void {
    this.#index.fill(0);
    this.#objs = new Array<Session | undefined>(this.#cap);
    this.#ring.fill(-1);
    this.#data.clear();
    this.#userIds.clear();
    this.#head = this.#tail = this.#free = -1;
    this.#used = this.#size = 0;
  }

  #write(to: Uint8Array, o: number, s: string, n: number): void {
    for (let i = 0; i < n; i++) to[o + i] = s.charCodeAt(i);
  }

  #home(slot: number): number {
    const ids = this.#ids;
    const o = slot * ID_LENGTH + R;
    return (SIX[ids[o]] | SIX[ids[o + 1]] << 6 | SIX[ids[o + 2]] << 12 | SIX[ids[o + 3]] << 18 | SIX[ids[o + 4]] << 24) & this.#mask;
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
    this.#objs[slot] = undefined;
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
    const copy = <T extends Uint8Array | Int32Array | Float64Array>(a: T, make: (n: number) => T, width: number): T => {
      const b = make(cap * width);
      b.set(a);
      return b;
    };
    this.#ids = copy(this.#ids, (n) => new Uint8Array(n), ID_LENGTH);
    this.#proofs = copy(this.#proofs, (n) => new Uint8Array(n), SECRET_LENGTH);
    this.#users = copy(this.#users, (n) => new Int32Array(n), 1);
    this.#flags = copy(this.#flags, (n) => new Uint8Array(n), 1);
    this.#times = copy(this.#times, (n) => new Float64Array(n), 5);
    this.#prev = copy(this.#prev, (n) => new Int32Array(n), 1);
    this.#next = copy(this.#next, (n) => new Int32Array(n), 1);
    this.#objs.length = cap;
    this.#cap = cap;
    // The index at twice the slots or more (a power of two): probes stay short.
    let size = 1;
    while (size < cap * 2) size *= 2;
    this.#index = new Int32Array(size);
    this.#mask = size - 1;
    for (let slot = this.#head; slot >= 0; slot = this.#next[slot]) this.#place(slot);
  }
}
