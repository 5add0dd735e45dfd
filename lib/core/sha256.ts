// HMAC-SHA256 of short strings under a fixed key, in JS (FIPS 180-4, RFC 2104): the user tag
// every sign-in computes. node:crypto's createHmac sets up and tears down an OpenSSL context per
// call (~40,000 instructions, 4-5 µs inside a sign-in, its code cold by then); here the key's two
// blocks are compressed once, at start, and a tag costs two block compressions (~1.2 µs).
// Measured in benchmarks/README.md; checked against node:crypto by test/unit/sha256.test.ts.
// Constant time in the data: only additions, rotations and bitwise operations touch it; the one
// table (K) is indexed by the round.

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = Int32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

const W = new Int32Array(64);

/** One 64-byte block of `b` at `at` into the state `s`. */
function compress(s: Int32Array, b: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++, at += 4) W[i] = (b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15];
    const y = W[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = s[0], b1 = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
  for (let i = 0; i < 64; i++) {
    const t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
      ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
      ((a & b1) ^ (a & c) ^ (b1 & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b1;
    b1 = a;
    a = (t1 + t2) | 0;
  }
  s[0] = (s[0] + a) | 0;
  s[1] = (s[1] + b1) | 0;
  s[2] = (s[2] + c) | 0;
  s[3] = (s[3] + d) | 0;
  s[4] = (s[4] + e) | 0;
  s[5] = (s[5] + f) | 0;
  s[6] = (s[6] + g) | 0;
  s[7] = (s[7] + h) | 0;
}

/** The message and its padding (grown for a longer message). */
let scratch = Buffer.alloc(2048);
const state = new Int32Array(8);
/** The last MAC (overwritten by the next). */
const out = Buffer.alloc(32);

/**
 * The SHA-256 of `n` bytes at the start of `scratch`, continuing from `from` after `prior`
 * bytes (an HMAC's key block), into `out`.
 */
function finish(from: Int32Array, n: number, prior: number): Buffer {
  state.set(from);
  const padded = (n + 9 + 63) & ~63;
  scratch.fill(0, n, padded);
  scratch[n] = 0x80;
  // The length in bits, big-endian in the last 8 bytes (well below 2^53: two 32-bit halves).
  const bits = (n + prior) * 8;
  scratch.writeUInt32BE(Math.floor(bits / 0x100000000), padded - 8);
  scratch.writeUInt32BE(bits >>> 0, padded - 4);
  for (let at = 0; at < padded; at += 64) compress(state, scratch, at);
  for (let i = 0; i < 8; i++) out.writeInt32BE(state[i], 4 * i);
  return out;
}

/** HMAC-SHA256 under one key (its UTF-8; a key longer than a block is hashed first, as RFC 2104 says). */
export class HmacSha256 {
  readonly #inner = new Int32Array(8);
  readonly #outer = new Int32Array(8);

  constructor(key: string) {
    let k = Buffer.from(key, 'utf8');
    if (k.length > 64) {
      k.copy(this.#room(k.length));
      k = Buffer.from(finish(IV, k.length, 0));
    }
    const block = Buffer.alloc(64);
    k.copy(block);
    for (let i = 0; i < 64; i++) block[i] ^= 0x36;
    this.#inner.set(IV);
    compress(this.#inner, block, 0);
    for (let i = 0; i < 64; i++) block[i] ^= 0x36 ^ 0x5c;
    this.#outer.set(IV);
    compress(this.#outer, block, 0);
    block.fill(0);
    k.fill(0);
  }

  #room(n: number): Buffer {
    if (scratch.length < n + 72) scratch = Buffer.alloc(n + 72);
    return scratch;
  }

  /**
   * The MAC of the UTF-8 of `s` (a lone surrogate as U+FFFD, as node:crypto encodes it). The
   * Buffer is overwritten by the next call: read or copy it first.
   */
  mac(s: string): Buffer {
    const n = this.#room(s.length * 3).write(s, 0, 'utf8');
    scratch.set(finish(this.#inner, n, 64));
    return finish(this.#outer, 32, 64);
  }
}
