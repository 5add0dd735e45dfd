// Cross-instance coherence of the local cache and its metrics (docs/design.md: Coherence, Metrics).
// Two (or three) Fastify apps in one process, each with its own ioredis client, one key prefix:
// what one instance revokes, rotates, updates or evicts must leave the other's L1.
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import type { Redis, Cluster } from 'ioredis';
import { tieredSession } from '../../lib/fastify/index.js';
import { managerOf } from '../../lib/core/sessions-api.js';
import { RevocationChannel } from '../../lib/core/store/channel.js';
import { TEST_SECRET } from '../fixtures/apps.js';
import { eachTarget, makeApp, tokenOf, cacheTrusted, type Target, signIn, me, inspector, twoInstances } from '../fixtures/targets.js';
import { DelayProxy } from '../fixtures/proxy.js';
import { RedisClass, RedisServer, fastFail, ready } from '../fixtures/redis.js';
import type { TestApp } from '../fixtures/targets.js';

const COOKIE = '__Host-sid';
/** Healthy propagation is well under a millisecond; the deadline absorbs a loaded 2-core machine. */
const PROPAGATION_DEADLINE_MS = 1000;
/** Slack for timer-driven deadlines (heartbeats) on a shared machine. */
const SLACK_MS = 300;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/**
 * Poll `cond` until it holds or `deadlineMs` passes: on every turn of the event loop for the
 * first 20 ms (so sub-millisecond propagation is measured, not rounded up to a timer), then
 * every 2 ms. Returns the elapsed ms, or Infinity when the deadline passed (so
 * `t.ok(ms <= deadline, ...)` fails with the measure in its message).
 */
async function poll(cond: () => boolean | Promise<boolean>, deadlineMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await cond()) return performance.now() - start;
    const elapsed = performance.now() - start;
    if (elapsed > deadlineMs) return Infinity;
    await (elapsed < 20 ? new Promise((r) => setImmediate(r)) : sleep(2));
  }
}

const fmt = (ms: number) => (Number.isFinite(ms) ? `${ms.toFixed(2)} ms` : 'never');

/** Warm `app`'s L1 with `token`: a miss, then a request that must be an L1 hit. */
async function warm(t: Test, app: TestApp, token: string, label: string): Promise<void> {
  t.equal((await me(app, token)).statusCode, 200, `${label}: first request is served`);
  const hits = app.sessions.stats().l1Hits;
  t.equal((await me(app, token)).statusCode, 200, `${label}: second request is served`);
  t.equal(app.sessions.stats().l1Hits, hits + 1, `${label}: the second request is an L1 hit`);
}

/** Wait until `app` has received `n` more revoked ids than `before`; returns the elapsed ms. */
async function received(app: { sessions: { stats(): { revocationsReceived: number } } }, before: number, n = 1): Promise<number> {
  return poll(() => app.sessions.stats().revocationsReceived >= before + n, PROPAGATION_DEADLINE_MS);
}

/** Ids of every pub/sub connection, per admin connection (one per master). */
async function pubsubIds(admins: Redis[]): Promise<Set<string>[]> {
  const out: Set<string>[] = [];
  for (const a of admins) {
    const list = (await a.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
    out.push(new Set([...list.matchAll(/(?:^|\n)id=(\d+) /g)].map((m) => m[1])));
  }
  return out;
}

/**
 * Two trusted instances on one key prefix, B with a 200 ms heartbeat, and the pub/sub connection
 * ids from before B started (so B's own subscribers can be told apart).
 */
async function watchedPair(t: Test, target: Target): Promise<{ admins: Redis[]; a: TestApp; b: TestApp; beforeB: Set<string>[] }> {
  const keyPrefix = target.prefix();
  const admins = target.admins();
  const a = await makeApp(t, target.client(), { keyPrefix });
  await cacheTrusted(a);
  const beforeB = await pubsubIds(admins);
  const b = await makeApp(t, target.client(), { keyPrefix, heartbeatInterval: 200 });
  await cacheTrusted(b);
  return { admins, a, b, beforeB };
}

const propagation: Record<string, number[]> = {};
const record = (target: Pick<Target, 'name'>, what: string, ms: number) => {
  (propagation[`${target.name} ${what}`] ??= []).push(ms);
};
t.teardown(() => {
  for (const [k, v] of Object.entries(propagation)) {
    const sorted = [...v].sort((a, b) => a - b);
    console.error(`# propagation ${k}: ${sorted.map((x) => x.toFixed(2)).join(', ')} ms`);
  }
});

t.test('a sign-out on one instance makes another instance that had the session in its local cache answer 401 as soon as the revocation ' +
  'arrives', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target);
    for (let i = 0; i < 5; i++) {
      const s = await signIn(a, `alice-${i}`);
      await warm(t, b, s.token, `session ${i} on B`);
      const before = b.sessions.stats().revocationsReceived;
      const out = await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } });
      t.equal(out.statusCode, 204, 'A signs the session out');
      const ms = await received(b, before);
      record(target, 'sign-out A→B', ms);
      t.ok(ms <= PROPAGATION_DEADLINE_MS, `B received the revocation within ${PROPAGATION_DEADLINE_MS} ms (took ${fmt(ms)})`);
      const misses = b.sessions.stats().l1Misses;
      t.equal((await me(b, s.token)).statusCode, 401, 'B answers 401 to the revoked token');
      t.equal(b.sessions.stats().l1Misses, misses + 1, 'B no longer had it in L1 (the request was a miss)');
      t.equal((await me(a, s.token)).statusCode, 401, 'A answers 401 too');
    }
  });
});

t.test('logging a user out everywhere on one instance rejects every one of that user\'s sessions on the other instance and leaves ' +
  'another user\'s session alone', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target);
    const mine = [await signIn(a, 'bob'), await signIn(a, 'bob'), await signIn(b, 'bob')];
    const other = await signIn(a, 'carol');
    for (const [i, s] of mine.entries()) await warm(t, a, s.token, `bob's session ${i} on A`);
    await warm(t, a, other.token, "carol's session on A");

    const before = a.sessions.stats().revocationsReceived;
    const r = await b.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: mine[2].token } });
    t.equal(r.statusCode, 200, 'B logs bob out everywhere');
    t.same(r.json(), { revoked: 3 }, 'all three of bob\'s sessions were revoked');
    const ms = await received(a, before, 3);
    record(target, 'log-out-everywhere B→A', ms);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `A received the three revoked ids within ${PROPAGATION_DEADLINE_MS} ms (took ${fmt(ms)})`);
    for (const [i, s] of mine.entries()) {
      t.equal((await me(a, s.token)).statusCode, 401, `bob's session ${i} is rejected on A`);
      t.equal((await me(b, s.token)).statusCode, 401, `bob's session ${i} is rejected on B`);
    }
    const hits = a.sessions.stats().l1Hits;
    const res = await me(a, other.token);
    t.equal(res.statusCode, 200, "carol's session still works on A");
    t.equal(res.json().userId, 'carol');
    t.equal(a.sessions.stats().l1Hits, hits + 1, "carol's session is still served from A's L1");

    // The manager call, without the route: every session of the user, from the other side.
    const dave = [await signIn(b, 'dave'), await signIn(b, 'dave')];
    for (const [i, s] of dave.entries()) await warm(t, a, s.token, `dave's session ${i} on A`);
    const before2 = a.sessions.stats().revocationsReceived;
    t.equal(await b.sessions.revokeAll('dave'), 2, 'revokeAll on B revokes both of dave\'s sessions');
    const ms2 = await received(a, before2, 2);
    record(target, 'log-out-everywhere B→A', ms2);
    t.ok(ms2 <= PROPAGATION_DEADLINE_MS, `A received dave's revoked ids within ${PROPAGATION_DEADLINE_MS} ms (took ${fmt(ms2)})`);
    for (const [i, s] of dave.entries()) t.equal((await me(a, s.token)).statusCode, 401, `dave's session ${i} is rejected on A`);
    t.equal((await me(a, other.token)).statusCode, 200, "carol's session is still unaffected");
  });
});

t.test('rotating a session or updating its data on one instance drops the old entry from the other instance\'s local cache', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target);

    // Rotation: the old token stops working on B, the new one works there.
    const s = await signIn(a, 'erin');
    await warm(t, b, s.token, 'the session on B before rotation');
    let before = b.sessions.stats().revocationsReceived;
    const rot = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: s.token } });
    t.equal(rot.statusCode, 200, 'A rotates the session');
    const fresh = tokenOf(rot);
    t.ok(fresh && fresh !== s.token, 'the rotation set a new token');
    t.equal(fresh!.slice(0, s.id.length), s.id, 'the public id is kept');
    let ms = await received(b, before);
    record(target, 'rotation A→B', ms);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `B received the rotation within ${PROPAGATION_DEADLINE_MS} ms (took ${fmt(ms)})`);
    t.equal((await me(b, s.token)).statusCode, 401, 'the old token is rejected on B');
    t.equal((await me(a, s.token)).statusCode, 401, 'the old token is rejected on A');
    const r = await me(b, fresh!);
    t.equal(r.statusCode, 200, 'the new token works on B');
    t.equal(r.json().id, s.id);

    // Data update: B shows the new data, not its cached copy.
    const d = await signIn(a, 'frank', { role: 'user' });
    await warm(t, b, d.token, 'the session on B before the data update');
    t.same((await me(b, d.token)).json().data, { role: 'user' }, 'B serves the original data from L1');
    before = b.sessions.stats().revocationsReceived;
    const up = await a.inject({ method: 'POST', url: '/data', cookies: { [COOKIE]: d.token }, payload: { role: 'admin' } });
    t.equal(up.statusCode, 200, 'A updates the session data');
    t.same(up.json().data, { role: 'admin' });
    ms = await received(b, before);
    record(target, 'data update A→B', ms);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `B received the data update within ${PROPAGATION_DEADLINE_MS} ms (took ${fmt(ms)})`);
    const misses = b.sessions.stats().l1Misses;
    const after = await me(b, d.token);
    t.equal(after.statusCode, 200, 'the session still works on B');
    t.same(after.json().data, { role: 'admin' }, 'B shows the new data');
    t.equal(b.sessions.stats().l1Misses, misses + 1, 'B re-read the session from Redis');
    t.same((await me(a, d.token)).json().data, { role: 'admin' }, 'A shows the new data');
  });
});

t.test('a session evicted by the per-user cap on one instance is dropped from the other instance\'s local cache', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const opts = { keyPrefix, maxSessionsPerUser: 2 };
    const a = await makeApp(t, target.client(), opts);
    const b = await makeApp(t, target.client(), opts);
    await cacheTrusted(a);
    await cacheTrusted(b);
    const first = [await signIn(a, 'gina'), await signIn(a, 'gina')];
    for (const [i, s] of first.entries()) await warm(t, b, s.token, `gina's session ${i} on B`);
    const before = b.sessions.stats().revocationsReceived;
    const third = await signIn(a, 'gina');
    const ms = await received(b, before);
    record(target, 'cap eviction A→B', ms);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `B received the eviction within ${PROPAGATION_DEADLINE_MS} ms (took ${fmt(ms)})`);
    const live = new Set((await a.sessions.list('gina')).map((x) => x.id));
    t.equal(live.size, 2, 'gina keeps two sessions');
    t.ok(live.has(third.id), 'the new session is one of them');
    const evicted = first.filter((s) => !live.has(s.id));
    const kept = first.filter((s) => live.has(s.id));
    t.equal(evicted.length, 1, 'exactly one of the older sessions was evicted');
    t.equal((await me(b, evicted[0].token)).statusCode, 401, 'the evicted session is rejected on B');
    t.equal((await me(a, evicted[0].token)).statusCode, 401, 'the evicted session is rejected on A');
    const hits = b.sessions.stats().l1Hits;
    t.equal((await me(b, kept[0].token)).statusCode, 200, 'the surviving older session still works on B');
    t.equal(b.sessions.stats().l1Hits, hits + 1, 'and is still served from B\'s L1');
    t.equal((await me(b, third.token)).statusCode, 200, 'the new session works on B');
  });
});

t.test('after every pub/sub connection is killed, a revocation published meanwhile is never served from the local cache: the cache is ' +
  'cleared and trust returns once the subscriber is back', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target);
    const s = await signIn(a, 'hank');
    const survivor = await signIn(a, 'hank');
    await warm(t, b, s.token, 'the session on B');
    await warm(t, b, survivor.token, 'the other session on B');
    const clearsB = b.sessions.stats().l1Clears;
    const admins = target.admins();

    let killed = 0;
    for (const adm of admins) killed += Number(await adm.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    t.ok(killed >= 2, `both subscribers were killed (${killed} pub/sub connections)`);
    // The revocation is published while the subscribers are (re)connecting: it may be lost.
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204,
      'A signs the session out');

    const ms = await poll(() => b.sessions.stats().l1Clears > clearsB && b.sessions.cacheTrusted, 3000 + SLACK_MS);
    record(target, 'pubsub kill → B cleared and trusted again', ms);
    t.ok(Number.isFinite(ms), `B cleared its L1 and trusts the channel again (took ${fmt(ms)}; l1Clears ${clearsB} → ` +
      `${b.sessions.stats().l1Clears}, cacheTrusted ${b.sessions.cacheTrusted})`);
    for (let i = 0; i < 3; i++) {
      const { l1Hits } = b.sessions.stats();
      t.equal((await me(b, s.token)).statusCode, 401, `B rejects the revoked session (request ${i + 1})`);
      t.equal(b.sessions.stats().l1Hits, l1Hits, `B did not answer it from L1 (request ${i + 1})`);
    }
    t.equal((await me(b, survivor.token)).statusCode, 200, 'the other session still works on B');
    t.ok(await poll(() => a.sessions.cacheTrusted, 3000 + SLACK_MS) < Infinity, 'A trusts its channel again too');

    // And the channel works again: a fresh revocation reaches B.
    await warm(t, b, survivor.token, 'the other session on B after the reconnect');
    const before = b.sessions.stats().revocationsReceived;
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: survivor.token } })).statusCode, 204);
    const ms2 = await received(b, before);
    record(target, 'sign-out A→B after reconnect', ms2);
    t.ok(ms2 <= PROPAGATION_DEADLINE_MS, `B receives revocations again (took ${fmt(ms2)})`);
    t.equal((await me(b, survivor.token)).statusCode, 401, 'and rejects the revoked session');
  });
});

t.test('killing every subscriber connection of one instance makes that instance clear its local cache and re-confirm, without disturbing ' +
  'the other instance', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { admins, a, b, beforeB } = await watchedPair(t, target);
    await sleep(300); // the second subscriber (Cluster) joins on its own
    const afterB = await pubsubIds(admins);
    const mine = afterB.flatMap((ids, i) => [...ids].filter((id) => !beforeB[i].has(id)).map((id) => ({ i, id })));
    const expected = target.name === 'cluster' ? 2 : 1;
    t.equal(mine.length, expected, `B has ${expected} subscriber connection(s) (${JSON.stringify(mine)})`);

    const s = await signIn(a, 'ivy');
    await warm(t, a, s.token, 'the session on A');
    await warm(t, b, s.token, 'the session on B');
    const clearsA = a.sessions.stats().l1Clears;
    const clearsB = b.sessions.stats().l1Clears;
    let killed = 0;
    for (const { i, id } of mine) killed += Number(await admins[i].call('CLIENT', 'KILL', 'ID', id));
    t.equal(killed, mine.length, 'B\'s subscribers were killed');
    // A revocation published while B's subscribers are away.
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204);

    const ms = await poll(() => b.sessions.stats().l1Clears > clearsB, 3 * 200 + SLACK_MS);
    record(target, 'own subscriber kill → B cleared', ms);
    t.ok(Number.isFinite(ms), `B cleared its L1 within ~3 heartbeats (took ${fmt(ms)})`);
    const back = await poll(() => b.sessions.cacheTrusted && b.sessions.stats().l1Clears > clearsB, 3000);
    t.ok(Number.isFinite(back), `B trusts its channel again (took ${fmt(back)})`);
    t.equal((await me(b, s.token)).statusCode, 401, 'B rejects the session revoked while its subscribers were away');
    t.equal(a.sessions.stats().l1Clears, clearsA, 'A did not clear its L1');
    t.ok(a.sessions.cacheTrusted, 'A kept trusting its channel');
  });
});

t.test('only this subscriber\'s own, current heartbeat confirms the channel: another instance\'s heartbeats and replays of its own old ' +
  'ones prove nothing', async (t) => {
  await eachTarget(t, async (t, target) => {
    const HB = 100;
    const keyPrefix = target.prefix();
    const channel = `${keyPrefix}revoked`;
    const client = target.client();
    await ready(client);
    // The channel under test publishes its heartbeats through this function. While `lost` is
    // set they go to a channel nobody listens on: a main connection whose PUBLISH never reaches
    // this subscriber. Everything else is the real channel on the real server.
    let lost = false;
    const sent: string[] = [];
    const ch = new RevocationChannel(client, undefined, channel, HB, async (msg) => {
      sent.push(msg);
      await client.publish(lost ? `${channel}:nowhere` : channel, msg);
    }, { onRevoked: () => {}, onInterrupted: () => {}, onState: () => {} });
    t.teardown(() => ch.stop());
    await ch.start();
    const first = await poll(() => ch.proven, 3000);
    t.ok(Number.isFinite(first), `with its heartbeats delivered the channel confirms (took ${fmt(first)})`);
    // Let a few heartbeats go round, so there are old ones of this channel to replay.
    const some = await poll(() => sent.length >= 4, 20 * HB);
    t.ok(Number.isFinite(some), `${sent.length} heartbeats went round`);

    lost = true;
    const old = [...sent];
    const down = await poll(() => !ch.proven, 3 * HB + SLACK_MS);
    t.ok(Number.isFinite(down), `once its own heartbeats stop arriving, trust is withdrawn (took ${fmt(down)})`);

    // Another instance on the same channel, beating every 50 ms: its heartbeats reach this
    // subscriber all the time. And this channel's own old heartbeats, replayed.
    const other = await makeApp(t, target.client(), { keyPrefix, heartbeatInterval: 50 });
    await cacheTrusted(other);
    const [admin] = target.admins();
    const [listener] = target.admins(); // its own connection: a subscribed one cannot publish
    let foreign = 0;
    await listener.subscribe(channel);
    listener.on('message', (_ch: string, msg: string) => { if (msg.startsWith('hb|') && !old.includes(msg)) foreign++; });
    const since = performance.now();
    let sawConfirmed = false;
    let replays = 0;
    while (performance.now() - since < 15 * HB) {
      await admin.publish(channel, old[replays++ % old.length]);
      for (let i = 0; i < 5; i++) {
        if (ch.proven) sawConfirmed = true;
        await new Promise((r) => setImmediate(r));
      }
      await sleep(5);
      if (ch.proven) sawConfirmed = true;
    }
    t.ok(replays > 50, `${replays} old heartbeats of this channel replayed over ${15 * HB} ms, with another instance beating every 50 ms`);
    t.ok(foreign >= 10, `${foreign} heartbeats of the other instance went over the channel meanwhile`);
    t.notOk(sawConfirmed, 'the channel was never confirmed by them (sampled on every turn of the event loop)');

    // Control: delivering its own heartbeats again confirms it, so the refusal above meant something.
    lost = false;
    const back = await poll(() => ch.proven, 3000);
    t.ok(Number.isFinite(back), `with its own heartbeats delivered again, the channel confirms (took ${fmt(back)})`);
  });
});

t.test('on a Cluster one of an instance\'s two subscribers dying interrupts nothing: no cache clear, trust kept, revocations still ' +
  'arrive, and the subscriber is replaced', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { admins, a, b, beforeB } = await watchedPair(t, target);
    await sleep(300);
    const mine = (await pubsubIds(admins)).flatMap((ids, i) => [...ids].filter((id) => !beforeB[i].has(id)).map((id) => ({ i, id })));
    t.equal(mine.length, 2, 'two subscribers, on two nodes');
    t.not(mine[0].i, mine[1].i, 'on different nodes');
    const s = await signIn(a, 'iris');
    const t2 = await signIn(a, 'iris');
    await warm(t, b, s.token, 'a session on B');
    await warm(t, b, t2.token, 'another session on B');
    const clears = b.sessions.stats().l1Clears;
    t.equal(Number(await admins[mine[0].i].call('CLIENT', 'KILL', 'ID', mine[0].id)), 1, 'one of B\'s subscribers was killed');
    const before = b.sessions.stats().revocationsReceived;
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204);
    const ms = await received(b, before);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `B still received the revocation through its other subscriber (took ${fmt(ms)})`);
    t.equal((await me(b, s.token)).statusCode, 401, 'and refuses the session');
    await sleep(3 * 200);
    t.equal(b.sessions.stats().l1Clears, clears, 'B never cleared its L1');
    t.ok(b.sessions.cacheTrusted, 'and kept trusting its channel');
    const hits = b.sessions.stats().l1Hits;
    t.equal((await me(b, t2.token)).statusCode, 200, 'the other session is still an L1 hit');
    t.equal(b.sessions.stats().l1Hits, hits + 1);
    const count = (sets: Set<string>[]) => sets.reduce((n, x) => n + x.size, 0);
    const replaced = await poll(async () => count(await pubsubIds(admins)) >= count(beforeB) + 2, 3000);
    t.ok(Number.isFinite(replaced), `the dead subscriber was replaced (${fmt(replaced)})`);
  }, { only: ['cluster'] });
});

t.test('on a Cluster a revocation that both of an instance\'s subscribers hear is handled once: counted once and its latency observed once',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const { admins, a, b, beforeB } = await watchedPair(t, target);
    const both = await poll(async () =>
      (await pubsubIds(admins)).reduce((n, ids, i) => n + [...ids].filter((id) => !beforeB[i].has(id)).length, 0) === 2, 3000);
    t.ok(Number.isFinite(both), `B has its two subscribers (${fmt(both)})`);
    await sleep(2 * 200); // a heartbeat round with both subscribed
    for (let i = 0; i < 3; i++) {
      const s = await signIn(a, `uma-${i}`);
      await warm(t, b, s.token, `session ${i} on B`);
      const before = b.sessions.stats();
      t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204,
        'A signs the session out');
      const ms = await received(b, before.revocationsReceived);
      t.ok(ms <= PROPAGATION_DEADLINE_MS, `B received the revocation (took ${fmt(ms)})`);
      // Long enough for the copy the other subscriber hears to arrive too.
      await sleep(300);
      const after = b.sessions.stats();
      t.equal(after.revocationsReceived, before.revocationsReceived + 1, 'revocationsReceived grew by exactly one');
      t.equal(after.revocationLatency.count, before.revocationLatency.count + 1, 'the latency was observed exactly once');
      t.equal((await me(b, s.token)).statusCode, 401, 'and B refuses the session');
    }
  }, { only: ['cluster'] });
});

t.test('a silently dead subscriber (its socket open, nothing delivered) is caught by the heartbeat: trust is withdrawn and the cache ' +
  'cleared within about two heartbeats, then trust returns', async (t) => {
  await eachTarget(t, async (t, target) => {
    const HB = 200;
    // The subscriber reads through a proxy that can hold everything back with the socket open
    // (readFrom: the subscriber duplicates that client), while writes go straight to Redis.
    const port = Number(new URL(target.server!.url).port);
    const proxy = await DelayProxy.start({ targetPort: port, delayMs: 0 });
    t.teardown(() => proxy.close());
    const keyPrefix = target.prefix();
    const via = new RedisClass({ host: '127.0.0.1', port: proxy.port, ...fastFail });
    via.on('error', () => {});
    t.teardown(() => via.disconnect());
    const b = await makeApp(t, target.client(), { keyPrefix, heartbeatInterval: HB, readFrom: via });
    await cacheTrusted(b);
    const s = await signIn(b, 'jack');
    await warm(t, b, s.token, 'the session on B');
    const clears = b.sessions.stats().l1Clears;
    proxy.pause();
    const ms = await poll(() => !b.sessions.cacheTrusted, 3 * HB + SLACK_MS);
    record(target, 'silent subscriber → trust withdrawn', ms);
    t.ok(Number.isFinite(ms), `trust was withdrawn within ${3 * HB + SLACK_MS} ms (took ${fmt(ms)})`);
    t.ok(b.sessions.stats().l1Clears > clears, 'the L1 was cleared');
    t.equal(b.sessions.stats().l1Size, 0, 'the L1 is empty');
    proxy.resume();
    const back = await poll(() => b.sessions.cacheTrusted, 10 * HB + 2000);
    t.ok(Number.isFinite(back), `trust returns once the subscriber delivers again (took ${fmt(back)})`);
  }, { only: ['single'] });
});

t.test('a paused server withdraws no trust: nothing can be published meanwhile, L1 hits keep serving, and a revocation queued during the ' +
  'pause arrives after it', async (t) => {
  await eachTarget(t, async (t, target) => {
    const HB = 100;
    const PAUSE = 800;
    const admins = target.admins();
    const { a, b } = await twoInstances(t, target, { heartbeatInterval: HB });
    const s = await signIn(a, 'jade');
    const other = await signIn(a, 'jade');
    await warm(t, b, s.token, 'the session on B');
    await warm(t, b, other.token, 'another session on B');
    const clears = b.sessions.stats().l1Clears;
    // The socket stays open but nothing flows.
    for (const adm of admins) await adm.call('CLIENT', 'PAUSE', String(PAUSE), 'ALL');
    const pausedAt = performance.now();
    // A sign-out on A waits in Redis until the pause ends (within the 1 s command timeouts).
    const out = a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } });
    await sleep(4 * HB + 50);
    t.ok(b.sessions.cacheTrusted, 'B still trusts its channel during the pause');
    const hits = b.sessions.stats().l1Hits;
    t.equal((await me(b, other.token)).statusCode, 200, 'and serves its cached sessions');
    t.equal(b.sessions.stats().l1Hits, hits + 1, 'from L1');
    t.equal((await out).statusCode, 204, 'the sign-out completes once the pause ends');
    t.ok(performance.now() - pausedAt >= PAUSE - 100, 'after the pause');
    const gone = await poll(async () => (await me(b, s.token)).statusCode === 401, 1000);
    t.ok(Number.isFinite(gone), `its revocation reached B (${fmt(gone)})`);
    t.equal(b.sessions.stats().l1Clears, clears, 'B never cleared its L1: nothing was lost');
  });
});

t.test('a stopped server (SIGSTOP), whose sockets do not even close, withdraws no trust: no heartbeat can be published, the local cache ' +
  'keeps serving, misses answer 503, and everything flows after SIGCONT', async (t) => {
  // A private single server this test may stop. Nothing can be published while it is stopped,
  // so nothing can be revoked through it either: the L1 may keep serving (its ttl bounds what
  // any partition could hide), and nothing was lost when it resumes.
  const HB = 200;
  const server = await RedisServer.start();
  const admin = server.admin();
  const pid = Number(/process_id:(\d+)/.exec(await admin.info('server'))![1]);
  admin.disconnect();
  let stopped = false;
  t.teardown(async () => {
    if (stopped) process.kill(pid, 'SIGCONT');
    await server.stop();
  });
  const client = server.client();
  t.teardown(() => client.disconnect());
  const b = await makeApp(t, client, { keyPrefix: `t${randomBytes(4).toString('hex')}:`, heartbeatInterval: HB });
  await cacheTrusted(b);
  const s = await signIn(b, 'lou');
  await warm(t, b, s.token, 'the session on B');
  const clears = b.sessions.stats().l1Clears;

  process.kill(pid, 'SIGSTOP');
  stopped = true;
  await sleep(4 * HB);
  t.ok(b.sessions.cacheTrusted, 'trust is kept while nothing can be published');
  const { l1Hits } = b.sessions.stats();
  t.equal((await me(b, s.token)).statusCode, 200, 'the cached session is served');
  t.equal(b.sessions.stats().l1Hits, l1Hits + 1, 'from the L1');
  const miss = await me(b, `${s.id.slice(0, 30)}AAAAAAAA.${'A'.repeat(43)}`);
  t.equal(miss.statusCode, 503, 'a miss needs Redis, which is stopped: 503');

  process.kill(pid, 'SIGCONT');
  stopped = false;
  const back = await poll(() => b.sessions.stats().channel === 'confirmed', 10 * HB + 3000);
  t.ok(Number.isFinite(back), `the channel is confirmed after SIGCONT (took ${fmt(back)})`);
  t.equal(b.sessions.stats().l1Clears, clears, 'the L1 was never cleared');
  t.equal((await me(b, s.token)).statusCode, 200, 'the session works');
});

t.test('a Redis read overtaken by an invalidation does not fill the local cache with what it read', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const clientA = target.client();
    const a = await makeApp(t, clientA, { keyPrefix });
    const b = await makeApp(t, target.client(), { keyPrefix });
    await cacheTrusted(a);
    await cacheTrusted(b);
    const s = await signIn(b, 'kate');
    t.equal(a.sessions.stats().l1Size, 0, 'A has nothing cached');

    // Hold A's connection for the session's slot: a BLPOP on a key with the same hash tag goes
    // first, so A's HGETALL for the session waits behind it on the same connection.
    const blocker = `${a.sessions.store.base(s.id.slice(0, 22))}blocker`;
    const blocked = (clientA as Redis).blpop(blocker, 0.4);
    const reads = a.sessions.stats().redisReads;
    const misses = a.sessions.stats().l1Misses;
    let settled = false;
    const inFlight = me(a, s.token).then((r) => { settled = true; return r; });
    const waitRead = await poll(() => a.sessions.stats().redisReads > reads, 200);
    t.ok(Number.isFinite(waitRead), `A's read is in flight (${fmt(waitRead)})`);
    t.equal(a.sessions.stats().l1Misses, misses + 1, 'the request was an L1 miss');

    // The invalidation arrives through the channel while the read is still held.
    const before = a.sessions.stats().revocationsReceived;
    const [admin] = target.admins();
    await admin.publish(`${keyPrefix}revoked`, `${Date.now()}|${s.id}`);
    const ms = await received(a, before);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `A received the invalidation (took ${fmt(ms)})`);
    t.notOk(settled, 'the read was still in flight when the invalidation arrived');

    const raced = await inFlight;
    await blocked;
    // The invalidation is a bare broadcast: the session still exists, so the request is answered
    // from what it read; only the filling of L1 is refused.
    t.equal(raced.statusCode, 200, 'the raced request is answered from what Redis held (the session still exists)');
    t.equal(a.sessions.stats().l1Size, 0, 'the spoiled read did not fill A\'s L1');

    // Revoke in Redis without a broadcast: only an L1 entry could still serve the session.
    const cleaner = await inspector(target);
    await cleaner.del(a.sessions.store.sessionKey(s.id));
    const hits = a.sessions.stats().l1Hits;
    const misses2 = a.sessions.stats().l1Misses;
    t.equal((await me(a, s.token)).statusCode, 401, 'the next request on A is rejected');
    t.equal(a.sessions.stats().l1Misses, misses2 + 1, 'the next request on A was an L1 miss');
    t.equal(a.sessions.stats().l1Hits, hits, 'and no L1 hit');

    // Control: the same sequence without the invalidation does fill L1.
    const c = await signIn(b, 'kate');
    await warm(t, a, c.token, 'an uninvalidated session on A');
  });
});

t.test('while an instance\'s revocation channel is down, a request that misses leaves its local cache empty, so a session revoked ' +
  'elsewhere meanwhile is refused at once, during the outage and after trust returns', async (t) => {
  // A private server: the outage is made with an ACL change, which no shared server should get.
  // B connects as its own ACL user; disabling that user keeps B's authenticated main connection
  // up (B still reads Redis) while its subscriber, once cut, cannot log in again: only the
  // channel is down, for as long as the test wants.
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const admin = server.admin();
  t.teardown(() => admin.disconnect());
  await admin.call('ACL', 'SETUSER', 'watcher', 'on', '>watcher-secret', '~*', '&*', '+@all');
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`;
  const clientA = server.client();
  const clientB = server.client({ username: 'watcher', password: 'watcher-secret' });
  t.teardown(() => { clientA.disconnect(); clientB.disconnect(); });
  const a = await makeApp(t, clientA, { keyPrefix });
  const b = await makeApp(t, clientB, { keyPrefix });
  await cacheTrusted(a);
  await cacheTrusted(b);
  const during = await signIn(a, 'vera');
  const after = await signIn(a, 'vera');
  const bystander = await signIn(a, 'walt');

  await admin.call('ACL', 'SETUSER', 'watcher', 'off');
  t.equal(Number(await admin.call('CLIENT', 'KILL', 'USER', 'watcher', 'TYPE', 'pubsub')), 1, 'B\'s subscriber was cut');
  const down = await poll(() => !b.sessions.cacheTrusted, 1000);
  t.ok(Number.isFinite(down), `B no longer trusts its channel (took ${fmt(down)})`);

  for (const [label, s] of [['one session', during], ['another session', after]] as const) {
    const { l1Misses } = b.sessions.stats();
    t.equal((await me(b, s.token)).statusCode, 200, `${label}: B serves it from Redis during the outage`);
    t.equal(b.sessions.stats().l1Misses, l1Misses + 1, `${label}: an L1 miss`);
    t.equal((await me(b, s.token)).statusCode, 200, `${label}: and again`);
    t.equal(b.sessions.stats().l1Misses, l1Misses + 2, `${label}: another miss, not a hit`);
  }
  t.equal(b.sessions.stats().l1Size, 0, 'the misses left B\'s local cache empty');

  // A revokes both sessions; the broadcast cannot reach B.
  const heard = b.sessions.stats().revocationsReceived;
  for (const s of [during, after]) {
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204, 'A signs a session out');
  }
  const { l1Hits } = b.sessions.stats();
  t.equal((await me(b, during.token)).statusCode, 401, 'B refuses the session revoked during the outage at once');
  t.equal(b.sessions.stats().l1Hits, l1Hits, 'it was not served from B\'s local cache');
  t.equal(b.sessions.stats().revocationsReceived, heard, 'B never heard of the revocations (its answer did not depend on them)');
  t.notOk(b.sessions.cacheTrusted, 'B\'s channel is still down');

  // Trust returns: the other revoked session is refused by the first request that follows.
  await admin.call('ACL', 'SETUSER', 'watcher', 'on');
  const back = await poll(() => b.sessions.cacheTrusted, 5000);
  t.ok(Number.isFinite(back), `B trusts its channel again once its subscriber can log in (took ${fmt(back)})`);
  t.equal((await me(b, after.token)).statusCode, 401,
    'B refuses the other session revoked during the outage on the first request after trust returns');

  // And the channel delivers again.
  await warm(t, b, bystander.token, 'a live session on B after the outage');
  const before = b.sessions.stats().revocationsReceived;
  t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: bystander.token } })).statusCode, 204, 'A signs it out');
  const ms = await received(b, before);
  t.ok(ms <= PROPAGATION_DEADLINE_MS, `B receives revocations again (took ${fmt(ms)})`);
  t.equal((await me(b, bystander.token)).statusCode, 401, 'and refuses the revoked session');
});

t.test('what Redis holds is no credential: a token built from a stored hash is refused, pre-warmed or not, whatever its length',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const a = await makeApp(t, target.client(), { keyPrefix, prewarm: 100 });
    await cacheTrusted(a);
    const honest = await signIn(a, 'oz');
    const tampered = await signIn(a, 'pia');
    const reader = await inspector(target);
    const stored = await reader.hget(a.sessions.store.sessionKey(honest.id), 'h');
    t.equal(stored?.length, 22, 'Redis holds 22 characters of the secret hash');
    // A record whose hash field has a secret's length (43): were it taken as a pre-warmed
    // entry's proof, it would be compared with the token's secret as if it were one.
    const fake = 'Q'.repeat(43);
    await reader.hset(a.sessions.store.sessionKey(tampered.id), 'h', fake);
    const noted = await poll(async () => (await reader.zcard(a.sessions.store.recentKey)) >= 2, 2000);
    t.ok(Number.isFinite(noted), `the recently-active set holds both sessions before C starts (${fmt(noted)})`);

    const c = await makeApp(t, target.client(), { keyPrefix, prewarm: 100 });
    const noL1 = await makeApp(t, target.client(), { keyPrefix, localCache: false });
    t.equal(c.sessions.stats().l1Size, 1, 'pre-warm took the honest session only');
    for (const [label, app] of [['pre-warmed instance', c], ['instance without L1', noL1]] as const) {
      t.equal((await me(app, `${tampered.id}.${fake}`)).statusCode, 401,
        `${label}: a token whose secret is the stored 43-character value is refused`);
      t.equal((await me(app, `${honest.id}.${stored}${'A'.repeat(21)}`)).statusCode, 401,
        `${label}: a token padded from the stored hash is refused`);
      t.equal((await me(app, honest.token)).statusCode, 200, `${label}: the real token works`);
    }
  });
});

t.test('pre-warm fills a starting instance\'s local cache with recently active sessions, skips revoked ones and still checks the secret',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const a = await makeApp(t, target.client(), { keyPrefix, prewarm: 100 });
    await cacheTrusted(a);
    const live = [await signIn(a, 'leo'), await signIn(a, 'mia'), await signIn(a, 'mia')];
    const revoked = await signIn(a, 'ned');
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: revoked.token } })).statusCode, 204);
    // The recently-active set is written in the background: wait until it holds all four.
    const recentKey = a.sessions.store.recentKey;
    const reader = await inspector(target);
    const seen = await poll(async () => (await reader.zcard(recentKey)) >= 4, 2000);
    t.ok(Number.isFinite(seen), `the recently-active set holds the four sessions (${fmt(seen)})`);

    const c = await makeApp(t, target.client(), { keyPrefix, prewarm: 100 });
    t.ok(c.sessions.cacheTrusted, 'C trusts its channel after ready()');
    t.equal(c.sessions.stats().l1Size, live.length, `C's L1 holds the ${live.length} live sessions, not the revoked one`);

    // A wrong secret for a pre-warmed, not yet proven id: answered from Redis like an uncached id
    // (the same timing and the same outcome), and refused there.
    const forged = `${live[2].id}.${'A'.repeat(43)}`;
    let hgetall = await target.commandCalls('hgetall');
    let { l1Hits, l1Misses } = c.sessions.stats();
    t.equal((await me(c, forged)).statusCode, 401, 'a wrong secret for a pre-warmed id is rejected');
    t.equal(await target.commandCalls('hgetall') - hgetall, 1, 'after one Redis read, as for an uncached id');
    t.equal(c.sessions.stats().l1Misses, l1Misses + 1, 'it counts as an L1 miss');
    hgetall = await target.commandCalls('hgetall');
    ({ l1Hits, l1Misses } = c.sessions.stats());
    for (const [i, s] of live.entries()) {
      const r = await me(c, s.token);
      t.equal(r.statusCode, 200, `pre-warmed session ${i} is served on C`);
      t.equal(r.json().id, s.id);
    }
    t.equal((await me(c, live[0].token)).statusCode, 200, 'and again');
    t.equal(await target.commandCalls('hgetall') - hgetall, 0, 'none of those requests read Redis (HGETALL delta 0)');
    t.equal(c.sessions.stats().l1Hits - l1Hits, live.length + 1, 'every good request was an L1 hit');
    t.equal(c.sessions.stats().l1Misses, l1Misses, 'no L1 miss');
    t.equal((await me(c, forged)).statusCode, 401, 'the wrong secret is still rejected once the entry is proven');
    t.equal(c.sessions.stats().l1Size, live.length, 'and the proven entry stays cached');
    ({ l1Misses } = c.sessions.stats());
    t.equal((await me(c, revoked.token)).statusCode, 401, 'the revoked session was not pre-warmed and is rejected');
    t.equal(c.sessions.stats().l1Misses, l1Misses + 1, 'the revoked session was an L1 miss');

    // A pre-warmed entry is dropped by a revocation like any other.
    const before = c.sessions.stats().revocationsReceived;
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: live[1].token } })).statusCode, 204);
    const ms = await received(c, before);
    record(target, 'sign-out A→C (pre-warmed)', ms);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `C received the revocation (took ${fmt(ms)})`);
    t.equal((await me(c, live[1].token)).statusCode, 401, 'the pre-warmed session revoked on A is rejected on C');
  });
});

t.test('pre-warm does not fill an id invalidated while its reads are in flight', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const a = await makeApp(t, target.client(), { keyPrefix, prewarm: 1000 });
    await cacheTrusted(a);
    const spoiled = await signIn(a, 'rex');
    const kept = await signIn(a, 'rex');
    const store = a.sessions.store;
    const reader = await inspector(target);
    const seen = await poll(async () => (await reader.zcard(store.recentKey)) >= 2, 2000);
    t.ok(Number.isFinite(seen), `the recently-active set holds both sessions (${fmt(seen)})`);
    // 500 more recent ids with no session behind them make up pre-warm's first batch of reads,
    // so the two real sessions are read in a second batch, which the test can hold back.
    const newer = Date.now() + 60_000;
    const filler = Array.from({ length: 500 }, () => randomBytes(29).toString('base64url').slice(0, 38));
    await reader.zadd(store.recentKey, ...filler.flatMap((id) => [newer, id]));

    // C starts (not through makeApp: the test acts while ready() is still running). A long
    // heartbeat interval keeps any heartbeat off C's connection while it is held.
    const clientC = target.client();
    await ready(clientC);
    // A Cluster client connects to each node on its first command there: connect them all now,
    // or a command queued while a node connects may be sent after one issued later.
    if (target.name === 'cluster') await Promise.all((clientC as Cluster).nodes('master').map((n) => n.ping()));
    const c = Fastify();
    await c.register(tieredSession, { client: clientC, secret: TEST_SECRET, keyPrefix, prewarm: 1000, heartbeatInterval: 5000 });
    c.get('/me', { preHandler: c.requireSession }, async (request) => ({ id: request.session!.id }));
    t.teardown(() => c.close());
    let settled = false;
    const starting = c.ready().then(() => { settled = true; });

    // On every turn of the event loop: the moment the first batch is sent, queue a BLPOP on C's
    // own connection to the sessions' slot. The second batch, sent once the first is answered,
    // then waits behind it, as the fill-race test above holds a single read.
    const until = Date.now() + 5000;
    while (managerOf(c.sessions).metrics.redisReads < 1 && Date.now() < until) await new Promise((r) => setImmediate(r));
    t.equal(managerOf(c.sessions).metrics.redisReads, 1, 'pre-warm sent its first batch of reads');
    const blocker = `${store.base(spoiled.id.slice(0, 22))}blocker`;
    const held = (clientC as Redis).blpop(blocker, 0.5);
    const second = await poll(() => managerOf(c.sessions).metrics.redisReads >= 2, 1000);
    t.ok(Number.isFinite(second), `the second batch (the two sessions) is sent and waits behind the held connection (${fmt(second)})`);

    // The invalidation of one of them arrives through the channel while that read is held.
    const before = c.sessions.stats().revocationsReceived;
    const [admin] = target.admins();
    await admin.publish(store.channel, `${Date.now()}|${spoiled.id}`);
    const ms = await received(c, before);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `C received the invalidation (took ${fmt(ms)})`);
    t.notOk(settled, 'pre-warm was still reading when the invalidation arrived');
    await held;
    await starting;
    t.equal(c.sessions.stats().l1Size, 1, 'pre-warm filled the session read alongside, not the invalidated one');

    // Revoke in Redis without a broadcast: only an L1 entry could still serve the session.
    await reader.del(store.sessionKey(spoiled.id));
    const { l1Hits, l1Misses } = c.sessions.stats();
    t.equal((await c.inject({ url: '/me', cookies: { [COOKIE]: spoiled.token } })).statusCode, 401,
      'the invalidated session is refused on C');
    t.equal(c.sessions.stats().l1Misses, l1Misses + 1, 'it was an L1 miss');
    t.equal((await c.inject({ url: '/me', cookies: { [COOKIE]: kept.token } })).statusCode, 200, 'the other session is served on C');
    t.equal(c.sessions.stats().l1Hits, l1Hits + 1, 'from the L1 pre-warm filled');
  });
});

/** The value of one un-labelled sample in Prometheus text. */
function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

t.test('the metrics move as requests happen, in stats() and in the Prometheus text', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target);
    const names = [
      'tiered_session_l1_hits_total', 'tiered_session_l1_misses_total', 'tiered_session_redis_reads_total',
      'tiered_session_redis_writes_total', 'tiered_session_revocations_received_total',
      'tiered_session_revocation_latency_seconds_count', 'tiered_session_revocation_latency_seconds_sum',
      'tiered_session_size_bytes_count', 'tiered_session_size_bytes_sum',
    ];
    const promA0 = a.sessions.prometheus();
    const promB0 = b.sessions.prometheus();
    for (const n of names) {
      t.ok(Number.isFinite(sample(promA0, n)), `${n} is exposed`);
    }
    for (const h of ['tiered_session_revocation_latency_seconds', 'tiered_session_size_bytes']) {
      t.match(promA0, new RegExp(`^# TYPE ${h} histogram$`, 'm'), `${h} is a histogram`);
      t.match(promA0, new RegExp(`^${h}_bucket\\{le="\\+Inf"\\} \\d+$`, 'm'), `${h} has a +Inf bucket`);
      t.ok((promA0.match(new RegExp(`^${h}_bucket\\{le="[0-9.e-]+"\\} \\d+$`, 'gm')) ?? []).length >= 3, `${h} has finite buckets`);
    }
    for (const n of ['tiered_session_l1_hits_total', 'tiered_session_l1_misses_total', 'tiered_session_redis_reads_total',
      'tiered_session_redis_writes_total', 'tiered_session_revocations_received_total']) {
      t.match(promA0, new RegExp(`^# TYPE ${n} counter$`, 'm'), `${n} is a counter`);
    }

    const a0 = a.sessions.stats();
    const s = await signIn(a, 'olga');
    const a1 = a.sessions.stats();
    t.ok(a1.redisWrites > a0.redisWrites, `a sign-in counts a Redis write (${a0.redisWrites} → ${a1.redisWrites})`);
    t.equal(a1.sessionSize.count, a0.sessionSize.count + 1, 'a sign-in records the stored size');
    t.ok(a1.sessionSize.sum > a0.sessionSize.sum, 'the size sum grows');

    const b0 = b.sessions.stats();
    t.equal((await me(b, s.token)).statusCode, 200);
    const b1 = b.sessions.stats();
    t.equal(b1.l1Misses, b0.l1Misses + 1, 'the first request on B is a miss');
    t.equal(b1.redisReads, b0.redisReads + 1, 'the miss reads Redis once');
    t.equal(b1.l1Hits, b0.l1Hits, 'no hit yet');
    t.equal((await me(b, s.token)).statusCode, 200);
    const b2 = b.sessions.stats();
    t.equal(b2.l1Hits, b1.l1Hits + 1, 'the second request on B is a hit');
    t.equal(b2.redisReads, b1.redisReads, 'the hit reads nothing');

    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204);
    const ms = await received(b, b2.revocationsReceived);
    t.ok(ms <= PROPAGATION_DEADLINE_MS, `B received the revocation (took ${fmt(ms)})`);
    const b3 = b.sessions.stats();
    t.equal(b3.revocationsReceived, b2.revocationsReceived + 1, 'revocationsReceived grows by one');
    t.equal(b3.revocationLatency.count, b2.revocationLatency.count + 1, 'the revocation latency is observed once');
    t.ok(b3.revocationLatency.p50 <= 1, `the latency lands in a finite bucket (p50 ≤ ${b3.revocationLatency.p50} s)`);
    t.ok(a.sessions.stats().redisWrites > a1.redisWrites, 'the sign-out counts a Redis write on A');

    const promA1 = a.sessions.prometheus();
    const promB1 = b.sessions.prometheus();
    const grew = (text0: string, text1: string, n: string, what: string) => {
      const v0 = sample(text0, n);
      const v1 = sample(text1, n);
      t.ok(v1 > v0, `${n} grew after ${what} (${v0} → ${v1})`);
    };
    grew(promB0, promB1, 'tiered_session_l1_hits_total', 'an L1 hit');
    grew(promB0, promB1, 'tiered_session_l1_misses_total', 'an L1 miss');
    grew(promB0, promB1, 'tiered_session_redis_reads_total', 'a miss');
    grew(promA0, promA1, 'tiered_session_redis_writes_total', 'a sign-in and a sign-out');
    grew(promB0, promB1, 'tiered_session_revocations_received_total', 'a revocation');
    grew(promB0, promB1, 'tiered_session_revocation_latency_seconds_count', 'a revocation');
    grew(promA0, promA1, 'tiered_session_size_bytes_count', 'a sign-in');
    grew(promA0, promA1, 'tiered_session_size_bytes_sum', 'a sign-in');
    const inf = (text: string, h: string) => Number(new RegExp(`^${h}_bucket\\{le="\\+Inf"\\} (\\d+)$`, 'm').exec(text)?.[1]);
    t.equal(inf(promB1, 'tiered_session_revocation_latency_seconds'), sample(promB1, 'tiered_session_revocation_latency_seconds_count'),
      'the +Inf bucket equals the count');
    t.ok(sample(promB1, 'tiered_session_revocation_latency_seconds_sum') >= 0, 'the latency sum is a number');
  });
});
