// The event feed (docs/events.md): every event type delivered end to end, through the HTTP
// routes of every adapter, on a single Redis and a Cluster, to two instances sharing the work,
// with handlers that fail and recover: nothing lost, a second delivery only after a failure,
// with the same id; parking and replay; takeover from an instance that stopped; expiry.
import t from 'tap';
import { eachTarget, twoInstances, signIn, tokenOf, COOKIE, eventually, type TestApp } from '../fixtures/targets.js';
import { sleep } from '../fixtures/redis.js';
import { EventFeed } from '../../lib/core/events/feed.js';
import { resolveEvents } from '../../lib/core/resolve-options.js';
import type { SessionEvent } from '../../lib/index.js';

/** The feed's settings every test here uses: quick polls, quick retries, a quick expiry sweep. */
const EVENTS = { pollInterval: 20, retryDelay: 40, sweepInterval: 150, maxAttempts: 4 };

interface Call { by: string; event: SessionEvent; attempt: number; ok: boolean }

/** Register a recording handler for every type on `app` ('*'), failing while `fail(event)` says so. */
function record(app: TestApp, by: string, calls: Call[], fail: (e: SessionEvent, attempt: number) => boolean) {
  app.face.events.on('*', async (event, { attempt }) => {
    const ok = !fail(event, attempt);
    calls.push({ by, event, attempt, ok });
    if (!ok) throw new Error('downstream is down');
  });
}

const cookieOf = (token: string) => ({ [COOKIE]: token });

t.test('every event type reaches the handlers of two instances once, and again only after a failure, with the same id', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target, {
      events: EVENTS, maxSessionsPerUser: 2, touchInterval: 500, shortSession: { idleTimeout: 1000, absoluteTimeout: 60_000 },
    });
    const calls: Call[] = [];
    // The downstream fails for a while: the first two tries of every third event fail.
    let n = 0;
    const failing = new Map<string, boolean>();
    const fail = (e: SessionEvent, attempt: number) => {
      if (!failing.has(e.id)) failing.set(e.id, n++ % 3 === 0);
      return failing.get(e.id)! && attempt <= 2;
    };
    record(a, 'a', calls, fail);
    record(b, 'b', calls, fail);

    const tokens: string[] = [];
    // created ×2, then a third sign-in over the cap: ended 'cap'.
    const s1 = await signIn(a, 'ella');
    const s2 = await signIn(b, 'ella');
    await sleep(5);
    const s3 = await signIn(a, 'ella');
    tokens.push(s1.token, s2.token, s3.token);
    // rotated, reauthenticated, updated (on s3)
    const rot = await a.inject({ method: 'POST', url: '/rotate', cookies: cookieOf(s3.token) });
    t.equal(rot.statusCode, 200);
    const t3 = tokenOf(rot)!;
    const conf = await b.inject({ method: 'POST', url: '/confirm', cookies: cookieOf(t3) });
    t.equal(conf.statusCode, 200);
    const t3b = tokenOf(conf)!;
    const upd = await a.inject({ method: 'POST', url: '/update', cookies: cookieOf(t3b), payload: { data: { theme: 'dark' } } });
    t.equal(upd.statusCode, 200);
    tokens.push(t3, t3b);
    // revoked (another device, by the route), sign-out, replaced (a sign-in over a carried cookie)
    const s4 = await signIn(a, 'finn');
    const s5 = await signIn(b, 'finn');
    t.equal((await a.inject({ method: 'DELETE', url: `/sessions/${s5.id}`, cookies: cookieOf(s4.token) })).statusCode, 204);
    t.equal((await b.inject({ method: 'POST', url: '/logout', cookies: cookieOf(s4.token) })).statusCode, 204);
    const s6 = await signIn(a, 'gus');
    const s7 = await signIn(a, 'gus', undefined, s6.token);
    // everywhere
    const s8 = await signIn(b, 'hana');
    t.equal((await b.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: cookieOf(s8.token) })).statusCode, 200);
    // expired: a session without "remember me" (1 s idle), never used again
    const short = await a.inject({ method: 'POST', url: '/login', payload: { user: 'ivo', remember: false } });
    const s9 = short.json().id as string;
    // …and one signed out before it would have expired: its end is told once, as a sign-out.
    const short2 = await b.inject({ method: 'POST', url: '/login', payload: { user: 'ivo', remember: false } });
    const s10 = short2.json().id as string;
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: cookieOf(tokenOf(short2)!) })).statusCode, 204);
    tokens.push(tokenOf(short2)!, s4.token, s5.token, s6.token, s7.token, s8.token, tokenOf(short)!);

    const want: [string, string, string?][] = [
      [s1.id, 'created'], [s2.id, 'created'], [s3.id, 'created'], [s1.id, 'ended', 'cap'],
      [s3.id, 'rotated'], [s3.id, 'reauthenticated'], [s3.id, 'updated'],
      [s4.id, 'created'], [s5.id, 'created'], [s5.id, 'ended', 'revoked'], [s4.id, 'ended', 'sign-out'],
      [s6.id, 'created'], [s6.id, 'ended', 'replaced'], [s7.id, 'created'],
      [s8.id, 'created'], [s8.id, 'ended', 'everywhere'], [s9, 'created'], [s9, 'ended', 'expired'],
      [s10, 'created'], [s10, 'ended', 'sign-out'],
    ];
    const delivered = (id: string, type: string, reason?: string) => calls.filter((c) => c.ok && c.event.sessionId === id &&
      c.event.type === type && (reason === undefined || (c.event as { reason?: string }).reason === reason));
    await eventually(async () => want.every(([id, type, reason]) => delivered(id, type, reason).length > 0), (ok) => ok, 10_000);
    await sleep(1200); // anything more would come now (s10's idle expiry has passed, and a sweep or more since)
    for (const [id, type, reason] of want) {
      t.equal(delivered(id, type, reason).length, 1, `${type}${reason ? ` (${reason})` : ''} of ${id} taken once`);
    }
    // Per event: its failed tries, then one success, all on one instance, attempts counted 1, 2, 3.
    const byId = new Map<string, Call[]>();
    for (const c of calls) byId.set(c.event.id, [...(byId.get(c.event.id) ?? []), c]);
    let retried = 0;
    for (const [id, list] of byId) {
      t.equal(list.filter((c) => c.ok).length, 1, `${id}: one success`);
      t.ok(list.slice(0, -1).every((c) => !c.ok) && list.at(-1)!.ok, `${id}: failures, then the success`);
      t.same(list.map((c) => c.attempt), list.map((_, i) => i + 1), `${id}: attempts in order`);
      t.equal(new Set(list.map((c) => c.by)).size, 1, `${id}: one instance`);
      t.same(list.map((c) => JSON.stringify(c.event)), list.map(() => JSON.stringify(list[0].event)), `${id}: the same event`);
      retried += list.length - 1;
    }
    t.equal(byId.size, calls.filter((c) => c.ok).length, 'no event without a success');
    t.equal(byId.size, want.length, 'and no event beyond those');
    t.ok(retried > 0, 'some deliveries failed and were retried');
    t.equal(a.face.events.stats().retried + b.face.events.stats().retried, retried, 'stats count the retries');
    t.equal(a.face.events.stats().delivered + b.face.events.stats().delivered, byId.size, 'stats count the deliveries');
    // What a created event says, and no token anywhere.
    const created = delivered(s1.id, 'created')[0].event;
    t.match(created, { userId: 'ella', remembered: true, newDevice: false, device: { name: String }, ip: String });
    t.ok(created.at > 0 && (created as { expiresAt: number }).expiresAt > created.at);
    t.equal((delivered(s3.id, 'rotated')[0].event as { rotations: number }).rotations, 1);
    t.equal((delivered(s3.id, 'reauthenticated')[0].event as { rotations: number }).rotations, 2);
    t.equal((delivered(s9, 'created')[0].event as { remembered: boolean }).remembered, false);
    const text = JSON.stringify(calls);
    for (const tok of tokens) {
      t.notOk(text.includes(tok.slice(tok.indexOf('.') + 1)), 'no secret of a token in any event');
    }
    // Everything delivered is gone from the streams.
    t.equal((await managerFeed(a).refreshStats()).pending, 0, 'nothing left in the streams');
    t.equal(a.face.events.stats().lagSeconds, 0);
  });
});

const managerFeed = (app: TestApp): EventFeed => app.sessions.events!;

t.test('an event whose handler keeps failing is parked after maxAttempts, listed, and delivered again with its id on replay', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a } = await twoInstances(t, target, { events: { ...EVENTS, maxAttempts: 2 } });
    const calls: Call[] = [];
    let broken = true;
    record(a, 'a', calls, (e) => broken && e.userId === 'jo');
    const s = await signIn(a, 'jo');
    const other = await signIn(a, 'kim');
    await eventually(() => a.face.events.parked(), (p) => p.length === 1, 5000);
    const [p] = await a.face.events.parked();
    t.match(p, { event: { type: 'created', sessionId: s.id, userId: 'jo' }, error: 'Error: downstream is down', attempts: 2 });
    t.equal(a.face.events.stats().parked, 1);
    t.ok(calls.some((c) => c.ok && c.event.sessionId === other.id), 'the rest of the feed went on');
    // Later events of the stream are not held up by a parked one.
    broken = false;
    t.equal(await a.face.events.replay(p.parkedId), 1);
    t.equal(await a.face.events.replay(p.parkedId), 0, 'a replayed event is no longer parked');
    await eventually(async () => calls.filter((c) => c.ok && c.event.sessionId === s.id), (l) => l.length === 1, 5000);
    const ok = calls.find((c) => c.ok && c.event.sessionId === s.id)!;
    t.equal(ok.event.id, p.event.id, 'the replayed event keeps its id');
    t.same(await a.face.events.parked(), []);
    await t.rejects(a.face.events.replay('nonsense'), { code: 'ERR_TIERED_SESSION_NOT_FOUND' });
    await t.rejects(a.face.events.parked({ limit: 0 }), { code: 'ERR_TIERED_SESSION_INVALID_ARGUMENT' });
    t.throws(() => a.face.events.on('nope' as 'created', () => {}), { code: 'ERR_TIERED_SESSION_INVALID_ARGUMENT' });
    t.match(a.face.prometheus(), /tiered_session_events_parked_total 1/);
  }, { adapters: ['fastify'] });
});

t.test('a handler that never settles counts as failed after handlerTimeout: the event is tried again, the stream goes on', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a } = await twoInstances(t, target, { events: { ...EVENTS, handlerTimeout: 150 } });
    const tries: { id: string; attempt: number }[] = [];
    a.face.events.on('created', (e, { attempt }) => {
      tries.push({ id: e.id, attempt });
      return attempt === 1 ? new Promise(() => {}) : undefined;
    });
    const s = await signIn(a, 'nell');
    await eventually(async () => tries.length, (n) => n >= 2, 5000);
    t.same(tries.map((x) => x.attempt), [1, 2], 'hung once, then tried again');
    t.equal(tries[0].id, tries[1].id, 'the same event');
    await eventually(async () => a.face.events.stats().delivered, (n) => n === 1, 3000);
    t.equal(a.face.events.stats().retried, 1);
    void s;
  }, { adapters: ['fastify'] });
});

t.test('events an instance took and never finished are taken over by another, with their ids', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const { a } = await twoInstances(t, target, { keyPrefix, events: EVENTS });
    // An instance whose handler never returns (it hangs, then the process is gone).
    const log = { info() {}, warn() {}, error() {}, debug() {} };
    const stuck = new EventFeed({
      client: target.client(), keyPrefix, events: resolveEvents({ ...EVENTS })!, commandTimeout: 1000, bufferCap: 4000,
      bufferTtl: 3600_000, logger: log as never, now: Date.now, testing: { consumer: 'stuck', claimIdle: 300 },
    });
    const seenByStuck: string[] = [];
    stuck.on('created', (e) => { seenByStuck.push(e.id); return new Promise(() => {}); });
    const s = await signIn(a, 'lia');
    await eventually(async () => seenByStuck.length, (n) => n === 1, 5000);
    // The other instance, with a short takeover too.
    const taker = new EventFeed({
      client: target.client(), keyPrefix, events: resolveEvents({ ...EVENTS })!, commandTimeout: 1000, bufferCap: 4000,
      bufferTtl: 3600_000, logger: log as never, now: Date.now, testing: { consumer: 'taker', claimIdle: 300 },
    });
    t.teardown(() => taker.close());
    const took: SessionEvent[] = [];
    taker.on('created', (e) => { took.push(e); });
    await eventually(async () => took.length, (n) => n === 1, 5000);
    t.equal(took[0].sessionId, s.id);
    t.equal(took[0].id, seenByStuck[0], 'the same id');
    t.ok(taker.stats().claimed >= 1);
    void a;
  }, { adapters: ['fastify'] });
});

t.test('with the feed off nothing is written for it, and its methods say so', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, keyPrefix } = await twoInstances(t, target, {});
    await signIn(a, 'max');
    const keys = await target.keys(keyPrefix);
    t.notOk(keys.some((k) => /\}[vwx]$/.test(k)), 'no event stream, parked stream or schedule');
    t.throws(() => a.face.events.on('created', () => {}), { code: 'ERR_TIERED_SESSION_INVALID_ARGUMENT' });
    t.throws(() => a.face.events.stats(), { code: 'ERR_TIERED_SESSION_INVALID_ARGUMENT' });
  }, { adapters: ['fastify'] });
});
