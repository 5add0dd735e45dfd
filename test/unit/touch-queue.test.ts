// The throttled last-active writes on their own (no Redis): batching, what pending() answers
// while a batch is queued or being written, one write at a time, failures swallowed, close().
import t from 'tap';
import { TouchQueue, type Touch } from '../../lib/core/touch-queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** flush() hands its batch to the writer after a microtask or two. */
const tick = () => new Promise((r) => setImmediate(r));

/** A writer that records each batch and answers when the test says so. */
function writer() {
  const batches: Touch[][] = [];
  const answers: { resolve: () => void; reject: (e: Error) => void }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const write = (items: Touch[]) => {
    batches.push(items);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise<void>((resolve, reject) => {
      answers.push({ resolve: () => { inFlight--; resolve(); }, reject: (e) => { inFlight--; reject(e); } });
    });
  };
  return { write, batches, answers, maxInFlight: () => maxInFlight };
}

t.test('touches queued together go out in one batch a few ms later, the latest time per id', async (t) => {
  const w = writer();
  const q = new TouchQueue(w.write);
  q.queue('a', 1);
  q.queue('b', 2);
  q.queue('a', 3);
  t.equal(w.batches.length, 0, 'nothing written at once');
  await sleep(50);
  t.equal(w.batches.length, 1, 'one batch');
  t.same(w.batches[0], [{ publicId: 'a', now: 3 }, { publicId: 'b', now: 2 }]);
  w.answers[0]!.resolve();
  await q.close();
});

t.test('pending() answers a queued touch, then the one being written, then 0 once written', async (t) => {
  const w = writer();
  const q = new TouchQueue(w.write);
  t.equal(q.pending('a'), 0);
  q.queue('a', 10);
  t.equal(q.pending('a'), 10, 'queued');
  const flushed = q.flush();
  await tick();
  t.equal(w.batches.length, 1);
  t.equal(q.pending('a'), 10, 'being written');
  q.queue('a', 20);
  t.equal(q.pending('a'), 20, 'a newer queued touch wins over the one being written');
  w.answers[0]!.resolve();
  await flushed;
  t.equal(q.pending('a'), 20, 'the newer one is still queued');
  const second = q.flush();
  await tick();
  w.answers[1]!.resolve();
  await second;
  t.equal(q.pending('a'), 0, 'written');
  await q.close();
});

t.test('a flush while a batch is being written waits for it: one write at a time, nothing lost', async (t) => {
  const w = writer();
  const q = new TouchQueue(w.write);
  q.queue('a', 1);
  const first = q.flush();
  await tick();
  q.queue('b', 2);
  const second = q.flush();
  await sleep(20);
  t.equal(w.batches.length, 1, 'the second batch waits for the first');
  w.answers[0]!.resolve();
  await first;
  await tick();
  t.equal(w.batches.length, 2);
  t.same(w.batches[1], [{ publicId: 'b', now: 2 }]);
  w.answers[1]!.resolve();
  await second;
  t.equal(w.maxInFlight(), 1, 'never two writes at once');
  await q.close();
});

t.test('a failed write never makes flush() throw, and clears what it was writing', async (t) => {
  const w = writer();
  const q = new TouchQueue(w.write);
  q.queue('a', 1);
  const flushed = q.flush();
  await tick();
  w.answers[0]!.reject(new Error('down'));
  await t.resolves(flushed);
  t.equal(q.pending('a'), 0);
  await q.close();
});

t.test('a flush with nothing queued writes nothing', async (t) => {
  const w = writer();
  const q = new TouchQueue(w.write);
  await q.flush();
  t.equal(w.batches.length, 0);
  await q.close();
  t.equal(w.batches.length, 0);
});

t.test('close() writes what is queued and starts no timer afterwards', async (t) => {
  const w = writer();
  const q = new TouchQueue(w.write);
  q.queue('a', 1);
  const closed = q.close();
  await tick();
  t.equal(w.batches.length, 1, 'written at once');
  w.answers[0]!.resolve();
  await closed;
  q.queue('b', 2);
  await sleep(50);
  t.equal(w.batches.length, 1, 'no timer after close');
  t.equal(q.pending('b'), 2);
});
