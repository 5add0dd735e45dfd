// The local cache's fill tickets on their own (no Redis): whoever reads a session holds a ticket
// from before the read until the fill, and an invalidation or a clear meanwhile voids it. Each
// rule is one way a revoked session could otherwise come back into L1.
import t from 'tap';
import { CLOCK_BASE, LocalCache, coarseNow, type Entry } from '../../lib/core/local-cache.js';
import type { Session } from '../../lib/core/session-data.js';

const ID = 'A'.repeat(38);
const OTHER = 'B'.repeat(38);
const entry = (userId = 'alice'): Entry =>
  ({ session: { id: ID, userId } as unknown as Session, proof: 's'.repeat(43), touched: 0, filled: 0 });
const cache = (trusted = () => true, tolerance = 0) => new LocalCache({ max: 100, ttl: 60_000 }, trusted, tolerance);
const get = (l1: LocalCache, id = ID) => l1.get(id, coarseNow());

t.test('hold, fill, release: a valid ticket fills, and the entry is there', async (t) => {
  const l1 = cache();
  const ticket = l1.hold(ID);
  t.equal(ticket.valid, true);
  const e = entry();
  t.equal(l1.fill(ID, ticket, e), true, 'filled');
  l1.release(ID, ticket);
  t.equal(get(l1), e, 'the entry is cached');
  t.equal(l1.size, 1);
  t.ok(e.filled >= coarseNow() - CLOCK_BASE - 1000, 'the fill time is set');
});

t.test('nothing is filled while the channel is not trusted, nor with the cache off', async (t) => {
  let trusted = false;
  const l1 = cache(() => trusted);
  const ticket = l1.hold(ID);
  t.equal(l1.fill(ID, ticket, entry()), false, 'untrusted: refused');
  t.equal(get(l1), undefined);
  trusted = true;
  t.equal(l1.fill(ID, ticket, entry()), true, 'trusted again: filled');
  l1.release(ID, ticket);

  const off = new LocalCache(false, () => true);
  const t2 = off.hold(ID);
  t.equal(off.enabled, false);
  t.equal(off.fill(ID, t2, entry()), false, 'localCache: false never fills');
  t.equal(off.get(ID, coarseNow()), undefined);
  off.release(ID, t2);
});

t.test('an invalidation during a read voids its ticket and drops the entry', async (t) => {
  const l1 = cache();
  const first = l1.hold(ID);
  l1.fill(ID, first, entry());
  l1.release(ID, first);
  const reader = l1.hold(ID);
  l1.invalidate([ID]);
  t.equal(get(l1), undefined, 'the cached entry is gone');
  t.equal(reader.valid, false, 'the ticket is void');
  t.equal(l1.fill(ID, reader, entry()), false, 'the read that the invalidation overtook fills nothing');
  l1.release(ID, reader);
  const later = l1.hold(ID);
  t.not(later, reader, 'a read that starts after the invalidation gets a fresh ticket');
  t.equal(l1.fill(ID, later, entry()), true, 'and may fill');
  l1.release(ID, later);
});

t.test('an invalidation of another id leaves a ticket alone', async (t) => {
  const l1 = cache();
  const reader = l1.hold(ID);
  l1.invalidate([OTHER]);
  t.equal(reader.valid, true);
  t.equal(l1.fill(ID, reader, entry()), true);
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
  t.equal(l1.fill(ID, b, entry()), false, 'B fills nothing');
  t.equal(get(l1), undefined, 'no revoked session in L1');
  l1.release(ID, b);
});

t.test('clear() empties the cache and voids every ticket; clears counts only clears that dropped something', async (t) => {
  const l1 = cache();
  t.equal(l1.clears, 0);
  l1.clear();
  t.equal(l1.clears, 0, 'an empty clear is not counted');
  const x = l1.hold(ID);
  l1.fill(ID, x, entry());
  l1.release(ID, x);
  const a = l1.hold(ID);
  const b = l1.hold(OTHER);
  l1.clear();
  t.equal(l1.size, 0);
  t.equal(l1.clears, 1);
  t.equal(a.valid, false);
  t.equal(b.valid, false);
  t.equal(l1.fill(ID, a, entry()), false);
  t.equal(l1.fill(OTHER, b, entry()), false);
  l1.release(ID, a);
  l1.release(OTHER, b);
});

t.test('an entry is dropped ttl ms after its fill', async (t) => {
  const l1 = new LocalCache({ max: 10, ttl: 1000 }, () => true);
  const x = l1.hold(ID);
  l1.fill(ID, x, entry());
  l1.release(ID, x);
  const now = coarseNow();
  t.ok(l1.get(ID, now + 500), 'within the ttl');
  t.equal(l1.get(ID, now + 1001), undefined, 'past the ttl');
  t.equal(l1.size, 0, 'and deleted');
});

t.test('idsWithPrefix lists the cached ids of one user tag', async (t) => {
  const l1 = cache();
  for (const id of [`${'T'.repeat(22)}${'1'.repeat(16)}`, `${'T'.repeat(22)}${'2'.repeat(16)}`, OTHER]) {
    const x = l1.hold(id);
    l1.fill(id, x, entry());
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
