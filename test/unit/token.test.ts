// The token codec on its own (lib/core/token.ts): the shape of a token and a public id, the user
// tag (bucket + keyed hash of the user id), what Redis stores of a secret, the constant-time
// comparisons, and that the 256 buckets hash to 256 evenly spaced Cluster slots.
import t from 'tap';
import { createHash } from 'node:crypto';
import {
  BUCKETS, BUCKET_LENGTH, HASH_LENGTH, ID_LENGTH, RANDOM_LENGTH, SECRET_LENGTH, TAG_LENGTH, TOKEN_LENGTH,
  constantTimeEqual, hashSecret, isPublicId, isTokenShape, newRandomAndSecret, secretMatches, secretMatchesAt, userTag,
} from '../../lib/core/token.js';
import { HmacSha256 } from '../../lib/core/sha256.js';

const KEY = new HmacSha256('k'.repeat(32));
const B64URL = /^[A-Za-z0-9_-]+$/;

/** CRC16 (XMODEM), as Redis Cluster hashes a key's tag to a slot. */
function slotOf(tag: string): number {
  let crc = 0;
  for (const byte of Buffer.from(tag)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

t.test('the lengths fit together: tag + random = id; id + "." + secret = token', async (t) => {
  t.equal(TAG_LENGTH + RANDOM_LENGTH, ID_LENGTH);
  t.equal(ID_LENGTH + 1 + SECRET_LENGTH, TOKEN_LENGTH);
  t.equal(TOKEN_LENGTH, 82);
});

t.test('bucket i is a tag of slot i × 64', async (t) => {
  t.equal(BUCKETS.length, 256);
  t.equal(new Set(BUCKETS).size, 256, 'all different');
  BUCKETS.forEach((b, i) => {
    t.equal(b.length, BUCKET_LENGTH);
    if (slotOf(b) !== i * 64) t.fail(`bucket ${i} (${b}) hashes to slot ${slotOf(b)}`);
  });
  t.ok(Object.isFrozen(BUCKETS));
});

t.test('userTag: a bucket and a keyed hash, the same for the same inputs, different for another key, prefix or user', async (t) => {
  const tag = userTag(KEY, 'ts:', 'alice');
  t.equal(tag.length, TAG_LENGTH);
  t.ok(BUCKETS.includes(tag.slice(0, BUCKET_LENGTH)), 'starts with a bucket');
  t.match(tag.slice(BUCKET_LENGTH), B64URL);
  t.equal(userTag(KEY, 'ts:', 'alice'), tag, 'deterministic');
  t.not(userTag(new HmacSha256('j'.repeat(32)), 'ts:', 'alice'), tag, 'another secret');
  t.not(userTag(KEY, 'other:', 'alice'), tag, 'another key prefix');
  t.not(userTag(KEY, 'ts:', 'bob'), tag, 'another user');
  t.not(userTag(KEY, 'ts:a', 'lice'), userTag(KEY, 'ts:', 'alice'), 'the prefix and the user id do not run together');
});

t.test('a new token has the shape, a public id the id\'s', async (t) => {
  for (let i = 0; i < 200; i++) {
    const { random, secret } = newRandomAndSecret();
    t.equal(random.length, RANDOM_LENGTH);
    t.equal(secret.length, SECRET_LENGTH);
    const id = userTag(KEY, 'ts:', `u${i}`) + random;
    if (!isPublicId(id) || !isTokenShape(`${id}.${secret}`)) t.fail(`token ${i} is not well-formed`);
  }
  const seen = new Set(Array.from({ length: 1000 }, () => newRandomAndSecret().secret));
  t.equal(seen.size, 1000, 'no secret repeats');
});

t.test('isTokenShape and isPublicId refuse every other length, a misplaced dot and non-base64url characters', async (t) => {
  const id = 'A'.repeat(ID_LENGTH);
  const token = `${id}.${'b'.repeat(SECRET_LENGTH)}`;
  t.ok(isTokenShape(token));
  t.notOk(isTokenShape(token.slice(1)), 'one short');
  t.notOk(isTokenShape(`${token}b`), 'one long');
  t.notOk(isTokenShape(`${id}b${'b'.repeat(SECRET_LENGTH)}`), 'no dot');
  t.notOk(isTokenShape(`${id.slice(1)}.b${'b'.repeat(SECRET_LENGTH)}`), 'the dot elsewhere');
  t.notOk(isTokenShape(token.replace(/b$/, '+')), 'a character outside base64url');
  t.notOk(isTokenShape(token.replace(/^A/, '.')), 'two dots');
  t.ok(isPublicId(id));
  for (const bad of [id.slice(1), `${id}A`, id.replace(/A$/, '/'), 7, null, undefined]) t.notOk(isPublicId(bad), String(bad));
});

t.test('hashSecret: the first 22 base64url characters of the secret\'s SHA-256', async (t) => {
  const secret = newRandomAndSecret().secret;
  t.equal(hashSecret(secret), createHash('sha256').update(secret).digest('base64url').slice(0, HASH_LENGTH));
  t.equal(hashSecret(secret).length, HASH_LENGTH);
});

t.test('the constant-time comparisons answer equality, read in place', async (t) => {
  const a = 'x'.repeat(SECRET_LENGTH);
  t.ok(constantTimeEqual(a, a));
  t.notOk(constantTimeEqual(a, `${a.slice(0, -1)}y`), 'the last character differs');
  t.notOk(constantTimeEqual(a, `y${a.slice(1)}`), 'the first character differs');
  const id = 'A'.repeat(ID_LENGTH);
  const token = `${id}.${a}`;
  t.ok(secretMatches(a, token));
  t.notOk(secretMatches(`${a.slice(0, -1)}y`, token));
  const header = `other=1; __Host-sid=${token}; more=2`;
  const at = header.indexOf(token);
  t.ok(secretMatchesAt(a, header, at), 'in a Cookie header, at the token');
  t.notOk(secretMatchesAt(`y${a.slice(1)}`, header, at));
});
