// The replay's bookkeeping (lib/core/replay.ts), without Redis: what it keeps, refuses and applies
// again. The target records what the replay asks of Redis.
import t from 'tap';
import { RevocationReplay } from '../../lib/core/replay.js';

function replay() {
  const revoked: string[] = [];
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const r = new RevocationReplay({ revoke: async (id) => { revoked.push(id); }, rotate: async () => {} }, quiet);
  t.teardown(() => r.close());
  return { r, revoked };
}

t.test("a sign-in's pending eviction is kept at once and taken back when it is not acknowledged", async (t) => {
  const { r } = replay();
  const withdraw = r.notePending(['S']);
  t.equal(r.lost('S', 0), true, 'refused while the acknowledgement is awaited');
  withdraw();
  t.equal(r.lost('S', 0), false, 'taken back: the undo may restore it');
});

t.test('taking back a pending eviction leaves an earlier acknowledged revocation of the same id kept', async (t) => {
  const { r } = replay();
  r.note(['S']);
  const withdraw = r.notePending(['S']);
  withdraw();
  t.equal(r.lost('S', 0), true, 'still refused: that revocation was answered');
});

t.test('taking back a pending eviction restores what had been heard of the id', async (t) => {
  const { r } = replay();
  r.heard(['S'], 'ended');
  const withdraw = r.notePending(['S']);
  withdraw();
  t.equal(r.lost('S', 0), true, 'the heard revocation is kept');
});

t.test("an undo that restores a session this instance ended and answered ends it again; a heard one is forgotten", async (t) => {
  const { r, revoked } = replay();
  r.note(['MINE']);
  r.heard(['HEARD'], 'ended');
  r.heard(['MINE', 'HEARD'], 'restored');
  t.same(revoked, ['MINE'], 'its own revocation applied again');
  t.equal(r.lost('MINE', 0), true, 'and still refused');
  t.equal(r.lost('HEARD', 0), false, 'a heard eviction that was restored is forgotten');
});
