// The local cache's fill tickets on their own (no Redis): whoever reads a session holds a ticket
// from before the read until the fill, and an invalidation or a clear meanwhile voids it. Each
// rule is one way a revoked session could otherwise come back into L1.
import t from 'tap';
import { LocalCache, coarseNow, type Ticket } from '../../lib/core/local-cache.js';
import { hashSecret } from '../../lib/core/token.js';
import type { Session } from '../../lib/core/session-data.js';

const ID = 'A'.repeat(38);
const OTHER = 'B'.repeat(38);
const sessionOf = (id: string, userId = 'alice'): Session => Object.freeze({
  id, userId, data: {}, createdAt: 1, absoluteExpiresAt: Date.now() + 60_000, remembered: true, authenticatedAt: 1, newDevice: false,
});
/** Fill `id` under ticket `t` (a session of `alice`, secret 's' × 43). */
const put = (l1: LocalCache, id: string, t: Ticket) => l1.fill(t, sessionOf(id), 's'.repeat(43), Date.now());
const cache = (trusted = () => true, tolerance = 0) => new LocalCache({ max: 100, ttl: 60_000 }, trusted, tolerance);
const get = (l1: LocalCache, id = ID) => {
  const slot = l1.find(id, 0, coarseNow());
  return slot < 0 ? undefined : l1.session(slot);
};

t.test('hold, fill, release: a valid ticket fills, and the entry is there', async (t) => {
  const l1 = cache();
  const ticket = l1.hold(ID);
  t.equal(ticket.valid, true);
  const e = sessionOf(ID);
  t.equal(l1.fill(ticket, e, 's'.repeat(43), Date.now(), true), true, 'filled');
  l1.release(ID, ticket);
  t.equal(get(l1), e, 'the session is cached (the object filled and kept, while it is recent)');
  t.equal(l1.size, 1);
  const again = l1.hold(ID);
  t.equal(l1.fill(again, e, 's'.repeat(43), Date.now()), true, 'filled again, not kept built');
  l1.release(ID, again);
  t.not(get(l1), e, 'its first hit builds the object');
  t.same(get(l1), e, 'with the same fields');
});

t.test('nothing is filled while the channel is not trusted, nor with the cache off', async (t) => {
  let trusted = false;
  const l1 = cache(() => trusted);
  const ticket = l1.hold(ID);
  t.equal(put(l1, ID, ticket), false, 'untrusted: refused');
  t.equal(get(l1), undefined);
  trusted = true;
  t.equal(put(l1, ID, ticket), true, 'trusted again: filled');
  l1.release(ID, ticket);

  const off = new LocalCache(false, () => true);
  const t2 = off.hold(ID);
  t.equal(off.enabled, false);
  t.equal(put(off, ID, t2), false, 'localCache: false never fills');
  t.equal(off.has(ID, coarseNow()), false);
  off.release(ID, t2);
});

t.test('an invalidation during a read voids its ticket and drops the entry', async (t) => {
  const l1 = cache();
  const first = l1.hold(ID);
  put(l1, ID, first);
  l1.release(ID, first);
  const reader = l1.hold(ID);
  l1.invalidate([ID]);
  t.equal(get(l1), undefined, 'the cached entry is gone');
  t.equal(reader.valid, false, 'the ticket is void');
  t.equal(put(l1, ID, reader), false, 'the read that the invalidation overtook fills nothing');
  l1.release(ID, reader);
  const later = l1.hold(ID);
  t.not(later, reader, 'a read that starts after the invalidation gets a fresh ticket');
  t.equal(put(l1, ID, later), true, 'and may fill');
  l1.release(ID, later);
});

t.test('an invalidation of another id leaves a ticket alone', async (t) => {
  const l1 = cache();
  const reader = l1.hold(ID);
  l1.invalidate([OTHER]);
  t.equal(reader.valid, true);
  t.equal(put(l1, ID, reader), true);
  l1.release(ID, reader);
});

t.test('concurrent readers share one ticket until the last releases it', async (t) => {
  const l1 = cache();
  const a = l1.hold(ID);
  const b = l1.hold(ID);
  t.equal(a, b, 'one ticket');
  t.equal(a.holders, 2);
  l1.release(ID, a);
  const c = l1.hold(ID);
  t.equal(c, a, 'still shared after one release');
  l1.release(ID, b);
  l1.release(ID, c);
  t.equal(a.holders, 0);
  const d = l1.hold(ID);
  t.not(d, a, 'a fresh ticket once every holder released');
  t.equal(d.valid, true);
  l1.release(ID, d);
});

t.test("a release of a voided ticket does not drop a newer reader's ticket", async (t) => {
  // Reader A starts, an invalidation voids A's ticket, reader B starts (a new ticket), A ends:
  // A's release must not take B's ticket out of the map, or a second invalidation during B's
  // read finds no ticket to void and B fills L1 with the revoked session.
  const l1 = cache();
  const a = l1.hold(ID);
  l1.invalidate([ID]);
  const b = l1.hold(ID);
  t.not(b, a);
  l1.release(ID, a);
  l1.invalidate([ID]);
  t.equal(b.valid, false, "B's ticket is voided by the invalidation during its read");
  t.equal(put(l1, ID, b), false, 'B fills nothing');
  t.equal(get(l1), undefined, 'no revoked session in L1');
  l1.release(ID, b);
});

t.test('clear() empties the cache and voids every ticket; clears counts only clears that dropped something', async (t) => {
  const l1 = cache();
  t.equal(l1.clears, 0);
  l1.clear();
  t.equal(l1.clears, 0, 'an empty clear is not counted');
  const x = l1.hold(ID);
  put(l1, ID, x);
  l1.release(ID, x);
  const a = l1.hold(ID);
  const b = l1.hold(OTHER);
  l1.clear();
  t.equal(l1.size, 0);
  t.equal(l1.clears, 1);
  t.equal(a.valid, false);
  t.equal(b.valid, false);
  t.equal(put(l1, ID, a), false);
  t.equal(put(l1, OTHER, b), false);
  l1.release(ID, a);
  l1.release(OTHER, b);
});

t.test('an entry is dropped ttl ms after its fill', async (t) => {
  const l1 = new LocalCache({ max: 10, ttl: 1000 }, () => true);
  const x = l1.hold(ID);
  put(l1, ID, x);
  l1.release(ID, x);
  const now = coarseNow();
  t.ok(l1.has(ID, now + 500), 'within the ttl');
  t.equal(l1.has(ID, now + 1001), false, 'past the ttl');
  t.equal(l1.size, 0, 'and deleted');
});

t.test('idsWithPrefix lists the cached ids of one user tag', async (t) => {
  const l1 = cache();
  for (const id of [`${'T'.repeat(22)}${'1'.repeat(16)}`, `${'T'.repeat(22)}${'2'.repeat(16)}`, OTHER]) {
    const x = l1.hold(id);
    put(l1, id, x);
    l1.release(id, x);
  }
  t.same(l1.idsWithPrefix('T'.repeat(22)).sort(), [`${'T'.repeat(22)}${'1'.repeat(16)}`, `${'T'.repeat(22)}${'2'.repeat(16)}`]);
  t.same(new LocalCache(false, () => true).idsWithPrefix('T'), []);
});

t.test('recentlyInvalidated: kept for the replica lag tolerance only, and only when one is set', async (t) => {
  const none = cache();
  none.invalidate([ID]);
  t.equal(none.recentlyInvalidated(ID), false, 'no tolerance: nothing kept');
  const l1 = cache(() => true, 200);
  l1.invalidate([ID]);
  t.equal(l1.recentlyInvalidated(ID), true);
  t.equal(l1.recentlyInvalidated(OTHER), false);
  await new Promise((r) => setTimeout(r, 250));
  t.equal(l1.recentlyInvalidated(ID), false, 'forgotten after the tolerance');
});

t.test('a full cache evicts an entry not hit since the clock last passed: a hit spares it', async (t) => {
  const l1 = new LocalCache({ max: 2, ttl: 60_000 }, () => true);
  const C = 'C'.repeat(38);
  for (const id of [ID, OTHER]) {
    const x = l1.hold(id);
    put(l1, id, x);
    l1.release(id, x);
  }
  t.ok(l1.find(ID, 0, coarseNow()) >= 0, 'the first is hit');
  const x = l1.hold(C);
  put(l1, C, x);
  l1.release(C, x);
  t.equal(l1.has(OTHER, coarseNow()), false, 'the one not used since goes');
  t.equal(l1.has(ID, coarseNow()), true, 'the one hit stays');
  t.equal(l1.has(C, coarseNow()), true);
});

t.test('a pre-warmed entry (the stored hash) is proven by its secret only, then keeps the secret', async (t) => {
  const l1 = cache();
  const secret = 'Q'.repeat(43);
  const x = l1.hold(ID);
  l1.fill(x, sessionOf(ID), hashSecret(secret), Date.now());
  l1.release(ID, x);
  const slot = l1.find(ID, 0, coarseNow());
  t.equal(l1.proves(slot, `${ID}.${'R'.repeat(43)}`, 0), false, 'another secret is refused');
  t.equal(l1.proves(slot, `${ID}.${secret}`, 0), true, 'its secret is accepted');
  t.equal(l1.proves(slot, `x=${ID}.${secret}`, 2), true, 'and then compared as the secret itself, in place');
  t.equal(l1.proves(slot, `${ID}.${'R'.repeat(43)}`, 0), false, 'another secret is still refused');
});
