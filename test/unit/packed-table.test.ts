// The L1's packed storage on its own: a model check against a plain Map (random sets, deletes,
// lookups, uses and touches over many growths and evictions, with times that fit the 40-bit
// fields and times that do not), the clock's choice of what to evict, and each field read back as
// it was written. The user ids' column (in place or interned) and the arena beneath it get checks
// of their own: ids shared, released and interned again, non-ASCII and of the longest length,
// through many compactions.
import t from 'tap';
import { randomBytes, randomUUID } from 'node:crypto';
import { PackedTable } from '../../lib/core/packed-table.js';
import type { Session } from '../../lib/core/session-data.js';
import { UserArena } from '../../lib/core/user-arena.js';
import { USER_KINDS, USER_SHORT, USER_UUID, UserColumn } from '../../lib/core/user-column.js';

const b64 = (n: number) => randomBytes(n).toString('base64url').slice(0, n);
const TAGS = Array.from({ length: 40 }, () => b64(22));
const newId = (tag = TAGS[Math.floor(Math.random() * TAGS.length)]) => tag + b64(16);
const secret = () => b64(43);
/**
 * A UUID in canonical form (kept as its 16 bytes) and spellings that are not one (kept as
 * written): uppercase, a letter past f, a dash out of place, no dashes, and ids of 16 or 17 bytes.
 */
const UUID = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const NEAR_UUIDS = [UUID, UUID.toUpperCase(), `${UUID.slice(0, 35)}g`, `${UUID.slice(0, 7)}-0${UUID.slice(9)}`,
  `${UUID.replaceAll('-', '')}abcd`, 'x'.repeat(17), `\u00ff${'a'.repeat(15)}`, `${UUID.slice(0, 35)}\u00e9`];
/** Ids that fit a slot (15 bytes of UTF-8 at most), then ids just too long for one. */
const SHORT_IDS = ['1', '42', '123456789012345', 'abcdefghijklm\u00e9', '漢字漢字漢', '🙂🙂🙂x', '\uFEFF',
  '1234567890123456', '漢字漢字漢字', '🙂🙂🙂🙂', `${'a'.repeat(14)}\u00e9`];
/**
 * User ids held by several sessions at once: 1 to 4 bytes of UTF-8 a character, a leading U+FEFF
 * (not a byte order mark to drop), the longest ids (512 UTF-16 code units; 1,536 bytes for CJK),
 * and ASCII ids of one length that differ in one byte only.
 */
const SHARED = ['ü', '漢字', '🙂', 'x🙂ü漢', '\uFEFFbom', 'a'.repeat(512), '漢'.repeat(512), '🙂'.repeat(256), `${'a'.repeat(511)}b`,
  ...Array.from({ length: 40 }, (_, i) => `user${String(i).padStart(2, '0')}`), ...NEAR_UUIDS, ...SHORT_IDS];
/** A user id seen once, seldom again: the arena's churn. */
const freshUser = (n: number) => n % 6 === 5 ? randomUUID() : `${['', 'é', '漢', '🙂', 'usr-'][n % 5]}${n}-${b64(8)}`;
const sessionOf = (id: string, userId: string, i = 0, data: object = {}): Session => Object.freeze({
  id, userId, data: Object.freeze(data), createdAt: 1_700_000_000_000 + i, absoluteExpiresAt: 1_800_000_000_000 + i,
  remembered: i % 2 === 0, authenticatedAt: 1_750_000_000_000 + i, newDevice: i % 3 === 0,
});

t.test('every field reads back as written, found in place inside a longer string', async (t) => {
  const tb = new PackedTable(10);
  const id = newId();
  const sec = secret();
  const s = sessionOf(id, 'ünïcode user 🙂', 3, { role: 'admin' });
  tb.set(s, sec, 1_760_000_000_123, 42);
  const header = `other=1; sid=${id}.${sec}; x=y`;
  const at = header.indexOf(id);
  const slot = tb.find(header, at);
  t.ok(slot >= 0, 'found from the header, not a slice');
  t.equal(tb.find(`${id.slice(0, 37)}x`, 0), -1, 'one character off: not found');
  t.equal(tb.secretMatches(slot, header, at + 39), true, 'the secret matches');
  t.equal(tb.secretMatches(slot, `${id}.${sec.slice(0, 42)}${sec[42] === 'A' ? 'B' : 'A'}`, 39), false, 'a last character off does not');
  t.equal(tb.hashed(slot), false);
  t.equal(tb.remembered(slot), false);
  t.equal(tb.absoluteAt(slot), s.absoluteExpiresAt);
  t.equal(tb.touchedAt(slot), 1_760_000_000_123);
  t.equal(tb.filledAt(slot), 42);
  tb.setTouched(slot, 5);
  t.equal(tb.touchedAt(slot), 5);
  const built = tb.session(slot);
  t.not(built, s, 'filled without keep: the first hit builds the object');
  t.same(built, s, 'with every field as filled');
  t.ok(Object.isFrozen(built));
  t.equal(tb.session(slot), built, 'and keeps it for the next hits');
  t.equal(tb.idOf(slot), id);
});

t.test('keep: the object filled is the object answered while it is recent (an L1 miss\'s)', async (t) => {
  const tb = new PackedTable(10);
  const s = sessionOf(newId(), 'u', 1);
  tb.set(s, secret(), 0, 0, true);
  const slot = tb.find(s.id, 0);
  t.equal(tb.session(slot), s);
  const other = sessionOf(newId(), 'u', 2);
  tb.set(other, secret(), 0, 0);
  t.same(tb.session(tb.find(other.id, 0)), other, 'not kept: built with the same fields');
  t.equal(tb.session(slot), s, 'the kept one stays');
});

t.test('a slot reused after its entry went answers the new entry, never the object kept for the old one', async (t) => {
  const tb = new PackedTable(10);
  const a = sessionOf(newId(), 'alice', 1);
  tb.set(a, secret(), 0, 0, true);
  const slot = tb.find(a.id, 0);
  t.equal(tb.session(slot), a, 'kept for its hits');
  tb.delete(a.id);
  const b = sessionOf(newId(), 'bob', 2);
  tb.set(b, secret(), 0, 0);
  t.equal(tb.find(b.id, 0), slot, 'the same slot, reused');
  t.same(tb.session(slot), b, "bob's session, built from the slot");
  t.equal(tb.session(slot).userId, 'bob');
});

t.test('packed four characters to three bytes: only the exact base64url characters match', async (t) => {
  const tb = new PackedTable(100);
  const id = newId();
  const sec = secret();
  tb.set(sessionOf(id, 'u'), sec, 0, 0);
  const slot = tb.find(id, 0);
  t.ok(slot >= 0);
  // Characters a six-bit table could confuse with base64url ones: standard base64's + and /,
  // padding, a code unit whose low byte is a base64url character ('Ł' is U+0141, 'A' is 0x41),
  // a fullwidth letter, a lone surrogate, NUL.
  const impostors = ['+', '/', '=', '.', '\u0141', '\uFF21', '\uD800', '\0'];
  for (const pos of [0, 21, 22, 26, 36, 37]) {
    for (const c of impostors) {
      t.equal(tb.find(id.slice(0, pos) + c + id.slice(pos + 1), 0), -1, `id character ${pos} as ${JSON.stringify(c)}: not found`);
    }
  }
  for (const pos of [0, 39, 40, 42]) {
    for (const c of impostors) {
      t.equal(tb.secretMatches(slot, `${id}.${sec.slice(0, pos)}${c}${sec.slice(pos + 1)}`, 39), false,
        `secret character ${pos} as ${JSON.stringify(c)}: no match`);
    }
  }
  // Each character's six bits count, the last group's too (the id's last two, the secret's last three).
  for (const pos of [36, 37]) {
    for (const c of '-_AQgw') {
      if (c !== id[pos]) t.equal(tb.find(id.slice(0, pos) + c + id.slice(pos + 1), 0), -1, `id character ${pos} as ${c}: not found`);
    }
  }
  for (const pos of [40, 41, 42]) {
    for (const c of '-_AQgw') {
      if (c !== sec[pos]) t.equal(tb.secretMatches(slot, `${id}.${sec.slice(0, pos)}${c}${sec.slice(pos + 1)}`, 39), false);
    }
  }
  // A character outside base64url read as 64 would carry into its neighbour: 'A' then '!' (0, 64)
  // sums to what 'B' then 'A' (1, 0) packs to. Such a pair matches nothing.
  const crafted = `xyBA${id.slice(4)}`;
  const craftedSecret = `xyBA${sec.slice(4)}`;
  tb.set(sessionOf(crafted, 'u'), craftedSecret, 0, 0);
  const cs = tb.find(crafted, 0);
  t.ok(cs >= 0);
  t.equal(tb.find(`xyA!${id.slice(4)}`, 0), -1, 'a carry from a character outside base64url: not found');
  t.equal(tb.secretMatches(cs, `${crafted}.xyA!${sec.slice(4)}`, 39), false, 'nor matched as the secret');
  t.equal(tb.secretMatches(cs, `${crafted}.${craftedSecret}`, 39), true);
  t.equal(tb.find(id.slice(0, 37), 0), -1, 'a string ending inside the id: not found');
  t.equal(tb.secretMatches(slot, `${id}.${sec.slice(0, 42)}`, 39), false, 'a string ending inside the secret: no match');
  t.equal(tb.idOf(slot), id, 'the id unpacks as it was');
  // Tags that share their first 20 characters (whole groups) and differ in the 21st or 22nd (the
  // top of the next group): idsWithPrefix tells them apart.
  const base = b64(20);
  const tags = ['AA', 'AB', 'BA', '_A', 'A_'].map((x) => base + x);
  const t2 = new PackedTable(100);
  const ids = tags.map((tag) => { const i = newId(tag); t2.set(sessionOf(i, 'u'), secret(), 0, 0); return i; });
  tags.forEach((tag, k) => t.same(t2.idsWithPrefix(tag), [ids[k]], `tag ${k}: its own id only`));
  t.same(t2.idsWithPrefix(`${base}A+`), [], 'a tag with a character outside base64url: none');
});

t.test('a session built again from its slot (its object no longer kept) says newDevice as it was filled', async (t) => {
  const tb = new PackedTable(10_000);
  const fresh = newId();
  const known = newId();
  tb.set(sessionOf(fresh, 'u', 3), secret(), 0, 0);
  tb.set(sessionOf(known, 'u', 1), secret(), 0, 0);
  // More than the kept objects (4,096) filled after them: both are built from their slots again.
  for (let i = 0; i < 5000; i++) tb.set(sessionOf(newId(), 'v', 1), secret(), 0, 0);
  const again = tb.session(tb.find(fresh, 0));
  t.not(again, sessionOf(fresh, 'u', 3), 'a new object');
  t.equal(again.newDevice, true, 'the flag of a new device');
  t.equal(tb.session(tb.find(known, 0)).newDevice, false, 'and of a known one');
  t.equal(again.remembered, false, 'the other flags are kept beside it');
});

t.test('a pre-warmed slot holds the stored hash until proven', async (t) => {
  const tb = new PackedTable(10);
  const id = newId();
  const hash = b64(22);
  tb.set(sessionOf(id, 'u'), hash, 0, 0);
  const slot = tb.find(id, 0);
  t.equal(tb.hashed(slot), true);
  t.equal(tb.storedHash(slot), hash);
  const sec = secret();
  tb.proven(slot, sec);
  t.equal(tb.hashed(slot), false);
  t.equal(tb.secretMatches(slot, `${id}.${sec}`, 39), true, 'then it keeps the secret');
});

t.test('sessions are rebuilt from their slot once no longer among the recent ones, with the same fields', async (t) => {
  const tb = new PackedTable(10_000);
  const first = sessionOf(newId(), 'ana', 2, { plan: 'pro', n: [1, 2] });
  tb.set(first, secret(), 0, 0);
  for (let i = 0; i < 5000; i++) tb.set(sessionOf(newId(), `u${i % 100}`, i), secret(), 0, 0);
  const slot = tb.find(first.id, 0);
  const again = tb.session(slot);
  t.not(again, first, 'a new object');
  t.same(again, first, 'equal field by field (data included)');
  t.ok(Object.isFrozen(again), 'frozen');
  t.equal(tb.session(slot), again, 'and kept while recent');
});

/** A time now and then that the 40-bit fields cannot hold: fractional, far from the epoch, infinite. */
const odd = (step: number, ms: number) => [ms + 0.5, ms + 2 ** 40, ms - 2 ** 40, Number.POSITIVE_INFINITY, -ms][step % 5];
const T0 = 1_764_000_000_000;

t.test('model check: random sets, deletes, finds, uses and touches against a Map', async (t) => {
  for (const max of [1, 7, 1500, 5000, 12_000]) {
    const tb = new PackedTable(max);
    /** id → [session, secret, touched, filled] */
    const model = new Map<string, [Session, string, number, number]>();
    const ids: string[] = [];
    /** The id in each slot, as the table placed them (what an eviction's slot held). */
    const bySlot = new Map<number, string>();
    let mismatches = 0;
    let evictions = 0;
    for (let step = 0; step < 40_000; step++) {
      const r = Math.random();
      const now = step % 17 === 0 ? odd(step, T0 + step) : T0 + step;
      if (r < 0.45 || ids.length === 0) {
        const id = ids.length > 0 && Math.random() < 0.1 ? ids[Math.floor(Math.random() * ids.length)] : newId();
        const user = Math.random() < 0.6 ? SHARED[Math.floor(Math.random() * SHARED.length)] : freshUser(step);
        const base = sessionOf(id, user, step, step % 7 === 0 ? { step } : {});
        const s = step % 13 === 0 ? Object.freeze({ ...base, createdAt: odd(step, base.createdAt) }) : base;
        const sec = secret();
        const touched = step % 11 === 0 ? odd(step, T0) : T0 - step;
        if (model.delete(id)) bySlot.delete(tb.find(id, 0));
        const slot = tb.set(s, sec, touched, now);
        if (slot >= 0) {
          // Only a full table evicts, an entry it holds, never the one being set.
          const evicted = bySlot.get(slot);
          if (model.size !== max || evicted === undefined || evicted === id || !model.delete(evicted)) mismatches++;
          bySlot.delete(slot);
          evictions++;
        } else if (model.size === max) {
          mismatches++;
        }
        bySlot.set(tb.find(id, 0), id);
        model.set(id, [s, sec, touched, now]);
        ids.push(id);
      } else if (r < 0.6) {
        const id = ids[Math.floor(Math.random() * ids.length)];
        bySlot.delete(tb.find(id, 0));
        if (tb.delete(id) !== model.delete(id)) mismatches++;
      } else {
        const id = ids[Math.floor(Math.random() * ids.length)];
        const slot = tb.find(id, 0);
        const m = model.get(id);
        if ((slot >= 0) !== (m !== undefined)) { mismatches++; continue; }
        if (m === undefined) continue;
        const s = tb.session(slot);
        if (s.id !== id || s.userId !== m[0].userId || s.createdAt !== m[0].createdAt ||
          s.absoluteExpiresAt !== m[0].absoluteExpiresAt || s.authenticatedAt !== m[0].authenticatedAt ||
          s.remembered !== m[0].remembered || s.newDevice !== m[0].newDevice ||
          JSON.stringify(s.data) !== JSON.stringify(m[0].data) || tb.touchedAt(slot) !== m[2] || tb.filledAt(slot) !== m[3] ||
          tb.absoluteAt(slot) !== m[0].absoluteExpiresAt || !tb.secretMatches(slot, `${id}.${m[1]}`, 39)) mismatches++;
        tb.use(slot);
        if (r > 0.9) {
          // A touch: a time that fits, or one that moves the slot's times to the side map.
          m[2] = step % 3 === 0 ? odd(step, now) : now;
          tb.setTouched(slot, m[2]);
        }
      }
      if (tb.size !== model.size) mismatches++;
    }
    if (max < 12_000) t.ok(evictions > 1000, `max ${max}: ${evictions} evictions`);
    t.equal(mismatches, 0, `max ${max}: no difference from the model over 40,000 steps (${tb.size} cached at the end)`);
    // Every id the model holds is found, and no other.
    t.equal([...model.keys()].filter((id) => tb.find(id, 0) < 0).length, 0, `max ${max}: every cached id is found`);
    t.equal(ids.filter((id) => !model.has(id) && tb.find(id, 0) >= 0).length, 0, `max ${max}: no evicted or deleted id is`);
    // The oldest entries' sessions are rebuilt from their slots (their user decoded from the slot or the arena).
    let rebuilt = 0;
    const wrongUsers: string[] = [];
    for (const [id, [m]] of model) {
      const s = tb.session(tb.find(id, 0));
      if (s !== m) rebuilt++;
      if (s.userId !== m.userId) wrongUsers.push(`${JSON.stringify(s.userId.slice(0, 20))} for ${JSON.stringify(m.userId.slice(0, 20))}`);
    }
    t.same(wrongUsers, [], `max ${max}: every session's userId (${rebuilt} of ${model.size} rebuilt)`);
    if (max >= 5000) t.ok(rebuilt > 500, `max ${max}: ${rebuilt} sessions rebuilt`);
    const byTag = (ids: (tag: string) => string[]) => Object.fromEntries(TAGS.slice(0, 8).map((tag) => [tag, ids(tag).sort()]));
    t.same(byTag((tag) => tb.idsWithPrefix(tag)), byTag((tag) => [...model.keys()].filter((id) => id.startsWith(tag))),
      `max ${max}: idsWithPrefix, for 8 tags`);
  }
});

t.test('idsWithPrefix: one tag\'s ids, after evictions and deletes', async (t) => {
  const tb = new PackedTable(50);
  const tag = TAGS[0];
  const mine: string[] = [];
  for (let i = 0; i < 200; i++) {
    const id = i % 3 === 0 ? newId(tag) : newId(TAGS[1 + (i % 5)]);
    tb.set(sessionOf(id, 'u'), secret(), 0, 0);
    if (id.startsWith(tag)) mine.push(id);
  }
  tb.delete(mine.at(-1)!);
  const expected = mine.filter((id) => tb.find(id, 0) >= 0);
  t.ok(expected.length > 5, `${expected.length} of the tag's sessions still cached`);
  t.same(tb.idsWithPrefix(tag).sort(), expected.sort());
});

t.test('clear empties everything; the table works again afterwards', async (t) => {
  const tb = new PackedTable(3000);
  const ids = Array.from({ length: 2500 }, () => newId());
  for (const id of ids) tb.set(sessionOf(id, 'u'), secret(), 0, 0);
  tb.clear();
  t.equal(tb.size, 0);
  t.equal(ids.filter((id) => tb.find(id, 0) >= 0).length, 0, 'nothing found');
  const s = sessionOf(newId(), 'v');
  tb.set(s, secret(), 0, 0);
  t.equal(tb.session(tb.find(s.id, 0)).userId, 'v');
});

t.test('user arena: a freed user is forgotten; its slot goes to the next new one', async (t) => {
  const arena = new UserArena(10);
  const u = arena.intern('漢字');
  t.equal(arena.intern('漢字'), u, 'one slot for both holds');
  t.equal(arena.size, 1);
  arena.release(u);
  t.equal(arena.name(u), '漢字', 'still held once');
  arena.release(u);
  t.equal(arena.size, 0, 'the last hold released');
  const v = arena.intern('漢子');
  t.equal(v, u, 'the freed slot is reused');
  t.equal(arena.name(v), '漢子');
  const w = arena.intern('漢字');
  t.not(w, u, 'the freed id is new again: not found in the index');
  t.equal(arena.size, 2);
  arena.release(w);
  t.equal(arena.size, 1, 'and held once only');
  t.equal(arena.name(v), '漢子');
});

t.test('user arena: model check against a Map, shared and churning ids, through compactions', async (t) => {
  const arena = new UserArena(2000);
  /** id → [slot, holds] */
  const model = new Map<string, [number, number]>();
  const bySlot = new Map<number, string>();
  /** One element per hold. */
  const held: string[] = [];
  /** The first step that differs from the model: past it, the model's holds are no longer the arena's to release. */
  let wrong = -1;
  let appended = 0;
  let largest = 0;
  const pick = <T>(a: T[]) => Math.floor(Math.random() * a.length);
  for (let step = 0; step < 200_000 && wrong < 0; step++) {
    let same = true;
    if (held.length === 0 || (held.length < 1500 && Math.random() < 0.52)) {
      const id = Math.random() < 0.5 ? SHARED[pick(SHARED)] : freshUser(step);
      const u = arena.intern(id);
      const m = model.get(id);
      if (m === undefined) {
        if (bySlot.has(u)) same = false;
        model.set(id, [u, 1]);
        bySlot.set(u, id);
        appended += Buffer.byteLength(id);
      } else {
        if (m[0] !== u) same = false;
        m[1]++;
      }
      held.push(id);
    } else {
      const k = pick(held);
      const id = held[k];
      held[k] = held[held.length - 1];
      held.pop();
      const m = model.get(id)!;
      if (arena.name(m[0]) !== id) same = false;
      arena.release(m[0]);
      if (--m[1] === 0) {
        model.delete(id);
        bySlot.delete(m[0]);
      }
    }
    if (!same || arena.size !== model.size) wrong = step;
    largest = Math.max(largest, arena.byteLength);
  }
  t.equal(wrong, -1, `no difference from the model over 200,000 steps (${model.size} users held at the end)`);
  t.same([...model].filter(([id, [u]]) => arena.name(u) !== id), [], 'every held id reads back');
  t.ok(appended > 10 * largest, `freed bytes are reclaimed: ${appended} B of new ids, ${largest} B allocated at most`);
});

t.test('user column: a UUID in canonical form and an id of 15 bytes at most kept in the slot; every other interned', async (t) => {
  const col = new UserColumn(100);
  const all = [...NEAR_UUIDS, ...SHORT_IDS];
  col.grow(100);
  const kinds = all.map((id, slot) => col.write(slot, id));
  const expected = all.map((id) => id === UUID ? USER_UUID : Buffer.byteLength(id) <= 15 ? USER_SHORT : 0);
  t.same(kinds, expected, 'the kind each is kept as');
  t.same(all.map((id, slot) => col.name(slot, kinds[slot])), all, 'each reads back exactly');
  t.equal(col.interned, expected.filter((k) => k === 0).length, 'only the ids that fit no slot are interned');
  // The same long id in a second slot shares its interned user; releasing both forgets it.
  const long = all.findIndex((_, i) => expected[i] === 0);
  const again = all.length;
  t.equal(col.write(again, all[long]), 0);
  t.equal(col.interned, expected.filter((k) => k === 0).length, 'a second hold interns nothing new');
  col.release(long, 0);
  col.release(again, 0);
  t.equal(col.interned, expected.filter((k) => k === 0).length - 1, 'the last hold released: forgotten');
  for (const [slot, kind] of kinds.entries()) if (kind !== 0) col.release(slot, kind);
  t.equal(col.interned, expected.filter((k) => k === 0).length - 1, 'ids kept in their slot were never interned');
  const many = Array.from({ length: 50 }, () => randomUUID());
  t.same(many.map((id, slot) => col.name(slot, col.write(slot, id))), many, 'random UUIDs read back');
  t.equal(USER_KINDS & (USER_UUID | USER_SHORT), USER_KINDS);
});

t.test('a full table evicts what was not hit since the clock\'s hand last passed', async (t) => {
  const tb = new PackedTable(100);
  const ids = Array.from({ length: 100 }, () => newId());
  for (const id of ids) t.equal(tb.set(sessionOf(id, 'u'), secret(), T0, T0), -1, 'not full yet: nothing evicted');
  const bySlot = new Map(ids.map((id) => [tb.find(id, 0), id]));
  const hit = ids.filter((_, i) => i % 2 === 0);
  for (const id of hit) tb.use(tb.find(id, 0));
  const evicted = Array.from({ length: 50 }, () => {
    const id = newId();
    const slot = tb.set(sessionOf(id, 'u'), secret(), T0, T0);
    const gone = bySlot.get(slot);
    bySlot.set(tb.find(id, 0), id);
    return gone;
  });
  t.same(evicted.sort(), ids.filter((_, i) => i % 2 === 1).sort(), 'the 50 not hit went, each once');
  t.equal(hit.filter((id) => tb.find(id, 0) < 0).length, 0, 'every hit entry stayed');
  // The hand cleared the hits it passed: with nothing hit since, the next to go are those entries, oldest slot first.
  t.equal(bySlot.get(tb.set(sessionOf(newId(), 'u'), secret(), T0, T0)), hit[0], 'spared once, not twice');
  t.equal(tb.size, 100);
});

t.test('times: whole ms within 40 bits of the epoch packed, any other kept as a double; each reads back exactly', async (t) => {
  const tb = new PackedTable(50);
  const cases = [T0, T0 + 1, T0 - 1, T0 + 2 ** 39 - 1, T0 - 2 ** 39, T0 + 2 ** 39, T0 - 2 ** 39 - 1, T0 + 0.25, T0 - 2 ** 32,
    T0 + 2 ** 32, T0 + 2 ** 32 - 1, 0, -5, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER, T0 + 400 * 86_400_000];
  tb.set(sessionOf(newId(), 'u'), secret(), T0, T0);
  const wrong: string[] = [];
  for (const [k, v] of cases.entries()) {
    const id = newId();
    const s = Object.freeze({ ...sessionOf(id, 'u', k), createdAt: v, absoluteExpiresAt: v, authenticatedAt: v });
    tb.set(s, secret(), v, T0 + k);
    const slot = tb.find(id, 0);
    const b = tb.session(slot);
    const read = [b.createdAt, b.absoluteExpiresAt, b.authenticatedAt, tb.absoluteAt(slot), tb.touchedAt(slot), tb.filledAt(slot)];
    if (read.some((x, i) => x !== (i === 5 ? T0 + k : v))) wrong.push(`${v}: ${read.join(' ')}`);
    tb.set(s, secret(), T0, v);
    if (tb.filledAt(tb.find(id, 0)) !== v || tb.touchedAt(tb.find(id, 0)) !== T0) wrong.push(`${v} as the fill time`);
  }
  t.same(wrong, [], `${cases.length} times, as session times and as fill times`);
  // A slot's touch that does not fit moves its times to doubles; the others are kept as they were.
  const id = newId();
  tb.set(sessionOf(id, 'u', 1), secret(), T0, T0);
  const slot = tb.find(id, 0);
  for (const v of [T0 + 5, T0 + 0.5, T0 + 6, T0 + 2 ** 40, T0 + 7]) {
    tb.setTouched(slot, v);
    t.equal(tb.touchedAt(slot), v, `touched at ${v}`);
  }
  t.equal(tb.filledAt(slot), T0, 'the fill time kept');
  t.equal(tb.absoluteAt(slot), sessionOf(id, 'u', 1).absoluteExpiresAt, 'the expiry kept');
  // Filled again, the slot's times are packed again; a slot freed and reused starts packed.
  for (let i = 0; i < 200; i++) tb.set(sessionOf(newId(), 'u', i), secret(), T0 + i, T0 + i);
  t.equal(tb.size, 50);
});

t.test('user arena: a freed id\'s bytes go to the next new id of the same length', async (t) => {
  const arena = new UserArena(5000);
  let slots = Array.from({ length: 3000 }, () => arena.intern(randomUUID()));
  const written = arena.written;
  let wrong = 0;
  let grew = 0;
  for (let round = 0; round < 20; round++) {
    for (const u of slots) arena.release(u);
    const ids = Array.from({ length: 3000 }, () => randomUUID());
    slots = ids.map((id) => {
      const u = arena.intern(id);
      if (arena.written !== written) grew++;
      return u;
    });
    wrong += ids.filter((id, k) => arena.name(slots[k]) !== id).length;
  }
  t.equal(wrong, 0, 'every id reads back');
  t.equal(grew, 0, '60,000 new ids, each written over the bytes of a freed one');
  const mixed = ['ü', 'xü', '漢字', 'abcd', 'ab漢', 'abcdefgh'];
  for (const id of mixed) arena.release(arena.intern(`${id}-old`));
  const back = mixed.map((id) => arena.intern(`${id}-new`));
  t.same(back.map((u) => arena.name(u)), mixed.map((id) => `${id}-new`), 'ids of other lengths, over the bytes of freed ids of theirs');
});

t.test('user arena: emptied and filled again, its bytes are reused', async (t) => {
  const arena = new UserArena(50_000);
  for (let round = 0; round < 10; round++) {
    const slots = Array.from({ length: 20_000 }, (_, i) => arena.intern(freshUser(i)));
    t.equal(arena.size, 20_000);
    for (const u of slots) arena.release(u);
    t.equal(arena.size, 0);
  }
  t.ok(arena.byteLength < 1.5 * 20_000 * 24, `${arena.byteLength} B allocated for 200,000 ids of at most 24 B, 20,000 at once`);
  arena.clear();
  const u = arena.intern('🙂');
  t.equal(arena.name(u), '🙂', 'works after clear');
});
