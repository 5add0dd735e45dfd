import { randomBytes, randomFillSync, hash } from 'node:crypto';
import type { HmacSha256 } from './sha256.js';

// Token = `<publicId>.<secret>`, publicId = `<userTag><random>`, userTag = `<bucket><user>`.
// bucket: 3 characters, one of BUCKETS. It is the Redis hash tag of every key of the user, so
//   all of one user's keys share one slot (multi-key scripts work on Redis Cluster). The 256
//   bucket tags hash to 256 evenly spaced cluster slots (0, 64, 128, …): users spread evenly
//   over any number of masters up to 256, and a slot's durable outbox (audit) is one of 256
//   keys that a consumer can enumerate.
// user: 19 base64url characters (114 bits) of HMAC-SHA256(secret, keyPrefix \0 userId). Keyed
//   with a server-side secret (the first listed one for a new session: a rotation gives a user
//   one tag per listed secret), so an id seen in an access log does not let anyone test guesses
//   of its owner's user id; 114 bits make two users' tags collide only by chance (~2^57 users).
// random: 16 base64url characters (96 bits): unique per session, safe to show and to put in a URL.
// secret: 43 base64url characters (256 bits from the CSPRNG); only its SHA-256 reaches Redis,
//   cut to its first 22 base64url characters (132 bits).
export const BUCKET_LENGTH = 3;
export const TAG_LENGTH = 22;
export const RANDOM_LENGTH = 16;
export const ID_LENGTH = TAG_LENGTH + RANDOM_LENGTH;
export const SECRET_LENGTH = 43;
export const TOKEN_LENGTH = ID_LENGTH + 1 + SECRET_LENGTH;
export const HASH_LENGTH = 22;

/** BUCKETS[i] hashes to cluster slot i × 64 (CRC16 mod 16384; checked by the test suite). */
const BUCKET_TABLE =
  'DLHCpbAIoFuELfDAs4CJ9Ef2DNhBbcAKOFweE9UBAwBX8Dt3FhJHMYB9DDQGM6-AwtCNyDrSFjjHOyCoMDSgD-4AuTCLYDps' +
  'APdFlNDUCByHAspFOZDvWJSDARDFnnDWcCkIAqPDm8DtwJQdBdGDHLFqAAMkAw0DkXEb6HwFBfgDJlFsaAOKBEsDixDp7Al_' +
  'EMkBqAAXmFdGLwFAb6IraEw0D_jBsaAZMFfgD8vBPuAyYDe1FyHAEbBlNEPdNSDAfvBOZDcQGkIAGBBnnDBeNQdAdVBMzDaq' +
  'AAfF9DDDABhJAbrGNyDgUI6-ACFGoMDFaBjjBP1D82DeuCY_BuEDYNGpbHEPAf2DzZEs4HfDBweEKOFbcHGpBTqDxzDa5A9U' +
  'DnLBBGAkkFWADMXAQ0HQFED6DllCPFAiKFUaDOxBcsAJ_DV7Ez-AvdB_HDsCEY9AUpB8TDPWFHnAtDCMIDqcDK8AWPJwdDRw' +
  'A6hFNJDwGCKmAQtG9wDTSBxXA4HFLjDugBYlASTNffDVsBzxBFCDjHFSEAooAU4MPeFpQCl9BDcDhhFQeAmOBgwLBdDR3HWb' +
  'EooBSEAziFFCGl9BpQIPeEU4D9fBQeAxIFDcLWbBrqHBdDG5GKmAgfBNJDbAFxXADrC9wDAUFYlAeFBLjE4HFzxAFRJffDCu' +
  'AcbF_HDfEAz-HYOF8TDEQAY9AaBGMIDdeBHnABVNwdDGqBkzBWAEkkFBGHgTAD6LQFEQ0C93BUaDyjGPFA8EBvuEJ_DC1A_Y';
export const BUCKET_COUNT = 256;
export const BUCKETS: readonly string[] = Object.freeze(
  Array.from({ length: BUCKET_COUNT }, (_, i) => BUCKET_TABLE.slice(i * BUCKET_LENGTH, (i + 1) * BUCKET_LENGTH)),
);

/** The base64url alphabet, in value order. */
export const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL = new Uint8Array(128);
for (const c of BASE64URL) B64URL[c.charCodeAt(0)] = 1;

function isB64url(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || B64URL[c] === 0) return false;
  }
  return true;
}

/**
 * No lone surrogate. Every lone surrogate encodes to the same UTF-8 replacement bytes, so two
 * ill-formed ids would share one user tag, one Redis user and one PostgreSQL user_id.
 */
export const isWellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/**
 * The user's tag (bucket + keyed hash of the user id): every key and session id of the user
 * carries it. `key` is a secret's HMAC key (user-tags.ts keeps one per listed secret).
 */
export function userTag(key: HmacSha256, keyPrefix: string, userId: string): string {
  const mac = key.mac(`${keyPrefix}\0${userId}`);
  // Bytes 1-15 are 20 base64url characters; the tag keeps 19 (114 bits).
  return BUCKETS[mac[0]] + mac.toString('base64url', 1, 16).slice(0, TAG_LENGTH - BUCKET_LENGTH);
}

// CSPRNG output is drawn in 4 KB blocks and each byte is used once: one system call per ~90
// sign-ins instead of one per sign-in.
const POOL = Buffer.alloc(44 * 93);
let poolPos = POOL.length;

/** The random part of a new public id and a new secret (12 + 32 fresh CSPRNG bytes). */
export function newRandomAndSecret(): { random: string; secret: string } {
  if (poolPos + 44 > POOL.length) {
    randomFillSync(POOL);
    poolPos = 0;
  }
  const at = poolPos;
  poolPos += 44;
  // Read in place (no views), then wiped: the bytes are used once.
  const out = { random: POOL.toString('base64url', at, at + 12), secret: POOL.toString('base64url', at + 12, at + 44) };
  POOL.fill(0, at, at + 44);
  return out;
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** What Redis stores of a secret: sha256, base64url, the first HASH_LENGTH chars. */
export function hashSecret(secret: string): string {
  return hash('sha256', secret, 'base64url').slice(0, HASH_LENGTH);
}

/** A well-formed public id (no I/O, no allocation beyond the check). */
export function isPublicId(id: unknown): id is string {
  return typeof id === 'string' && id.length === ID_LENGTH && isB64url(id, 0, ID_LENGTH);
}

/** Whether `token` could be a token at all: exact length, one dot in place, base64url elsewhere. */
export function isTokenShape(token: string): boolean {
  return token.length === TOKEN_LENGTH && token.charCodeAt(ID_LENGTH) === 46 /* . */ &&
    isB64url(token, 0, ID_LENGTH) && isB64url(token, ID_LENGTH + 1, TOKEN_LENGTH);
}

/**
 * Compare two strings of equal, public length in time that does not depend on where they
 * differ. Used on the hot path instead of building Buffers for `crypto.timingSafeEqual`.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Constant-time comparison of a cached secret with a token's secret part, in place (no slice). */
export function secretMatches(secret: string, token: string): boolean {
  let diff = secret.length ^ (token.length - ID_LENGTH - 1);
  for (let i = 0; i < secret.length; i++) diff |= secret.charCodeAt(i) ^ token.charCodeAt(ID_LENGTH + 1 + i);
  return diff === 0;
}

/** Where the value found by the last cookieStart() ends (module state: the scan allocates nothing). */
let valueEnd = 0;

/**
 * Where the value of the one cookie called `name` starts in a Cookie header (its end in
 * `valueEnd`), by a strict scan: no decoding, no allocation. -1 when absent, -2 when it appears
 * more than once (a duplicated session cookie is ambiguous, so it counts as no session).
 */
function cookieStart(header: string, name: string): number {
  let found = -1;
  let pos = 0;
  const n = header.length;
  while (pos < n) {
    while (pos < n && (header.charCodeAt(pos) === 32 || header.charCodeAt(pos) === 9)) pos++;
    let end = header.indexOf(';', pos);
    if (end === -1) end = n;
    if (header.startsWith(name, pos) && header.charCodeAt(pos + name.length) === 61 /* = */) {
      if (found !== -1) return -2;
      let vEnd = end;
      while (vEnd > pos && (header.charCodeAt(vEnd - 1) === 32 || header.charCodeAt(vEnd - 1) === 9)) vEnd--;
      found = pos + name.length + 1;
      valueEnd = vEnd;
    }
    pos = end + 1;
  }
  return found;
}

/** The value of the one cookie called `name`: undefined when absent, null when duplicated. */
export function readCookie(header: string, name: string): string | null | undefined {
  const at = cookieStart(header, name);
  return at === -1 ? undefined : at === -2 ? null : header.slice(at, valueEnd);
}

/**
 * Where the value of the one cookie called `name` starts, when it has a token's length; -1
 * otherwise (absent, duplicated, any other length). The hot path reads the token in place.
 */
export function tokenAt(header: string, name: string): number {
  const at = cookieStart(header, name);
  return at >= 0 && valueEnd - at === TOKEN_LENGTH ? at : -1;
}

/** secretMatches on the token that starts at `at` in `s` (a Cookie header), read in place. */
export function secretMatchesAt(secret: string, s: string, at: number): boolean {
  let diff = secret.length ^ SECRET_LENGTH;
  const from = at + ID_LENGTH + 1;
  for (let i = 0; i < secret.length; i++) diff |= secret.charCodeAt(i) ^ s.charCodeAt(from + i);
  return diff === 0;
}
