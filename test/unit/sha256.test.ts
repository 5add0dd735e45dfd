// The user tag's HMAC-SHA256 (lib/core/sha256.ts) against node:crypto and RFC 4231: every
// session id carries the tag, so a tag computed differently from the one it was written with
// would lose every session (and an older instance and a newer one must agree on it).
import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import { HmacSha256 } from '../../lib/core/sha256.js';
import { BUCKETS, userTag } from '../../lib/core/token.js';
import { UserTags } from '../../lib/core/user-tags.js';

const hex = (b: Buffer) => b.toString('hex');
/** The tag as node:crypto computes it (the formula sessions were written with). */
const tagOf = (secret: string, user: string) => {
  const mac = createHmac('sha256', secret).update(`ts:\0${user}`).digest();
  return BUCKETS[mac[0]] + mac.subarray(1).toString('base64url').slice(0, 19);
};

t.test('RFC 4231 test cases 1, 2 and 7 (a key longer than a block)', async (t) => {
  t.equal(hex(new HmacSha256('\x0b'.repeat(20)).mac('Hi There')),
    'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
  t.equal(hex(new HmacSha256('Jefe').mac('what do ya want for nothing?')),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  // Case 7's key is 131 bytes of 0xaa; as a string, the same bytes are latin1 (UTF-8 would
  // encode them as two bytes each), so this case goes through node:crypto with the string key.
  const long = 'a'.repeat(131);
  const msg = 'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed ' +
    'before being used by the HMAC algorithm.';
  t.equal(hex(new HmacSha256(long).mac(msg)), createHmac('sha256', long).update(msg).digest('hex'));
});

t.test('every message length from 0 to 300 bytes, and multi-byte and ill-formed text, as node:crypto computes it', async (t) => {
  const keys = ['k'.repeat(32), 'a benchmark secret that is at least 32 characters long', 'k'.repeat(64), 'k'.repeat(65),
    'é'.repeat(40), '\ud800'.repeat(3) + 'x'.repeat(40), 'k'.repeat(300)];
  const messages: string[] = [];
  for (let n = 0; n <= 300; n++) messages.push(randomBytes(n).toString('latin1'));
  messages.push('é'.repeat(100), '😀'.repeat(70), 'a\ud800b', '\udfff', 'x'.repeat(5000));
  let wrong = 0;
  for (const key of keys) {
    const h = new HmacSha256(key);
    for (const m of messages) if (hex(h.mac(m)) !== createHmac('sha256', key).update(m).digest('hex')) wrong++;
  }
  t.equal(wrong, 0, `${keys.length * messages.length} MACs, none differs`);
});

t.test('userTag is the tag node:crypto gives (sessions written before this implementation keep theirs)', async (t) => {
  const key = 'a benchmark secret that is at least 32 characters long';
  const h = new HmacSha256(key);
  for (const user of ['alice', '0f8fad5b-d9cb-469f-a165-70867728950e', 'ü'.repeat(200), 'x'.repeat(512)]) {
    t.equal(userTag(h, 'ts:', user), tagOf(key, user), user.slice(0, 20));
  }
});

t.test('UserTags: each listed secret\'s tag, in order, as node:crypto computes it (a rotation finds the older sessions)', async (t) => {
  const secrets = Array.from({ length: 5 }, (_, i) => `secret number ${i} `.padEnd(40, '.'));
  const tags = new UserTags([...secrets, secrets[1]], 'ts:');
  for (const user of ['alice', 'bob']) {
    const want = secrets.map((k) => tagOf(k, user));
    t.equal(tags.first(user), want[0], `${user}: a sign-in's tag, before the memo has the user`);
    t.same(tags.of(user), want, `${user}: every secret's tag once, the first secret's first`);
    t.equal(tags.first(user), want[0], `${user}: a sign-in's tag, from the memo`);
    t.ok(tags.listed(`${want[3]}${'A'.repeat(16)}`, user), 'an id under a listed secret');
    t.notOk(tags.listed(`${tagOf('a retired secret, not listed any more', user)}${'A'.repeat(16)}`, user), 'nor under another');
  }
});
